# Container image of signpost (every role runs from it; see docs/deploy.md).
#
#   make docker-build IMAGE_REGISTRY=ghcr.io/aikernel    # compile (release), stage, build the image
#   make docker-push  IMAGE_REGISTRY=ghcr.io/aikernel    # push it
#   make manifests                                       # regenerate deploy/kubernetes/dns-monitoring.yaml
#
# Variables: IMAGE_REGISTRY (required), IMAGE_NAME (signpost), IMAGE_TAG (the workspace version),
# CONTAINER_TOOL (podman when installed, else docker; may carry options, e.g. "podman --root DIR"),
# BINARY (a signpost binary to package instead of compiling one: skips cargo), CONTEXT (staging directory).

IMAGE_NAME ?= signpost
IMAGE_TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
CONTAINER_TOOL ?= $(shell command -v podman >/dev/null 2>&1 && echo podman || echo docker)
CONTEXT ?= target/image
RELEASE_BINARY := target/release/signpost
BINARY ?= $(RELEASE_BINARY)
IMAGE = $(IMAGE_REGISTRY)/$(IMAGE_NAME):$(IMAGE_TAG)

.PHONY: docker-build docker-push image-name manifests check-registry release-binary

check-registry:
	@test -n "$(IMAGE_REGISTRY)" || { echo "set IMAGE_REGISTRY, e.g. make docker-build IMAGE_REGISTRY=ghcr.io/aikernel" >&2; exit 64; }

# Compiled only when the image is made from the release binary (the default).
release-binary:
ifeq ($(BINARY),$(RELEASE_BINARY))
	cargo build --release --locked -p signpost
endif

docker-build: check-registry release-binary
	deploy/image/stage-rootfs $(BINARY) $(CONTEXT)
	$(CONTAINER_TOOL) build --build-arg VERSION=$(IMAGE_TAG) -f $(CONTEXT)/Containerfile -t $(IMAGE) $(CONTEXT)

docker-push: check-registry
	$(CONTAINER_TOOL) push $(IMAGE)

image-name: check-registry
	@echo $(IMAGE)

manifests:
	python3 deploy/monitoring/generate.py
