.PHONY: check test demo env-up env-down

check:
	scripts/check

test:
	scripts/test

demo:
	examples/kafka-scaledjob/demo

env-up:
	tests/env/up

env-down:
	tests/env/down
