# A thin front for people who type make; ./run.sh does the work.
.PHONY: all test demo sanitize docs fuzz bench soak install ci clean

all:
	./run.sh test

test demo sanitize docs fuzz bench ci:
	QUICK=$(QUICK) ./run.sh $@

soak:
	SOAK_S=$(or $(SOAK_S),300) ./run.sh soak

install:
	./run.sh install $(PREFIX)

clean:
	rm -rf build build-*
