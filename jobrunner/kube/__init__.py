"""The Kubernetes side: API connection, Job manifests and watch-backed caches."""
