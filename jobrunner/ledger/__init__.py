"""The SQL ledger of scaled objects, scaling decisions and Jobs."""
