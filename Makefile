# Thin wrapper over CMake for the README's two commands. Everything real is in CMakeLists.txt.
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan
CMAKE_FLAGS ?=
PROMPT ?= And God said,

.PHONY: all deps build run test test-fast asan clean

all: build

deps:
	./tools/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

# The main job: generate text with the bundled model on this machine.
run: build
	./$(BUILD)/host-sdk/chaski run --prompt "$(PROMPT)" --max-tokens 64

# The whole suite: a normal build, then the same tests under ASan+UBSan.
# CUDA code is compiled in the normal build whenever nvcc is present; GPU tests skip without a GPU.
test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -LE known-gap
	cmake -S . -B $(ASAN_BUILD) -DCHASKI_SANITIZE=ON -DCHASKI_CUDA=OFF $(CMAKE_FLAGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS) -LE 'slow|fuzz|known-gap'

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
