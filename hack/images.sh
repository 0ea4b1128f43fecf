#!/usr/bin/env bash
# Build the shared test images FROM scratch and push them to the local registries.
#
#   localhost:5001/dockwright-test/busybox:1  static busybox with its applets in /bin
#   localhost:5001/dockwright-test/web:1      busybox httpd on port 8080 with a healthcheck
#
# Both are also pushed to localhost:5002 (the registry with authentication) under the same
# repository names. A build is skipped when its inputs are unchanged since the last push and
# the image is still present locally and in both registries.
# Needs the engine and the registries: run hack/engine.sh and hack/registries.sh first.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OPEN_REGISTRY="localhost:5001"
AUTH_REGISTRY="localhost:5002"
REGISTRY_USER="dockwright"
REGISTRY_PASSWORD="dockwright-test-secret"
BASE_REPOSITORY="dockwright-test/busybox"
WEB_REPOSITORY="dockwright-test/web"
TAG="1"
BUSYBOX_BINARY="/bin/busybox"

ensure_packages busybox-static
ensure_commands curl:curl
docker info >/dev/null 2>&1 || die "the Docker engine does not respond; run hack/engine.sh first"

IMAGES_DIR="$STATE_DIR/images"
mkdir -p "$IMAGES_DIR"

# A throwaway client config, so the login to the auth registry leaves ~/.docker untouched.
DOCKER_CONFIG="$(mktemp -d)"
export DOCKER_CONFIG
trap 'rm -rf "$DOCKER_CONFIG"' EXIT

# Succeed when registry port $1 has a manifest for repository $2 and tag $3.
manifest_exists() {
    local port="$1" repository="$2" tag="$3"
    curl -sf -o /dev/null --head --max-time 5 -u "$REGISTRY_USER:$REGISTRY_PASSWORD" \
        -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
        "http://127.0.0.1:$port/v2/$repository/manifests/$tag"
}

# Build the context dir $2 as $OPEN_REGISTRY/$1:$TAG unless its stamp matches the inputs,
# then push it to both registries.
build_and_push() {
    local repository="$1" context="$2"
    local image="$OPEN_REGISTRY/$repository:$TAG"
    local stamp="$IMAGES_DIR/$(basename "$repository").stamp"

    local inputs_hash
    inputs_hash="$(cd "$context" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
    local image_id
    image_id="$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"

    if [ -s "$stamp" ] && [ "$(cat "$stamp")" = "$inputs_hash $image_id" ] \
        && manifest_exists 5001 "$repository" "$TAG" \
        && manifest_exists 5002 "$repository" "$TAG"; then
        log "$image is current"
        return 0
    fi

    log "building $image"
    # The legacy builder, because the CLI may have no buildx plugin.
    DOCKER_BUILDKIT=0 quietly docker build --tag "$image" "$context"
    docker tag "$image" "$AUTH_REGISTRY/$repository:$TAG"

    log "pushing $image and $AUTH_REGISTRY/$repository:$TAG"
    quietly docker push "$image"
    quietly docker push "$AUTH_REGISTRY/$repository:$TAG"

    image_id="$(docker image inspect --format '{{.Id}}' "$image")"
    printf '%s %s\n' "$inputs_hash" "$image_id" >"$stamp"
    log "$image is $image_id"
}

printf '%s' "$REGISTRY_PASSWORD" \
    | quietly docker login --username "$REGISTRY_USER" --password-stdin "$AUTH_REGISTRY"

# Base image: the static busybox binary and symlinks for its applets.
base_context="$IMAGES_DIR/busybox"
mkdir -p "$base_context"
cp "$BUSYBOX_BINARY" "$base_context/busybox"
cat >"$base_context/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /etc /root /tmp /var/tmp /home \
 && chmod 1777 /tmp /var/tmp \
 && printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' >/etc/passwd \
 && printf 'root:x:0:\nnogroup:x:65534:\n' >/etc/group
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["sh"]
DOCKERFILE
build_and_push "$BASE_REPOSITORY" "$base_context"

# Web image: busybox httpd on port 8080, healthy once it serves the index page.
# httpd runs as a child of a shell, because as PID 1 it would ignore SIGTERM (the kernel drops
# signals to PID 1 that it has no handler for) and `docker stop` would wait for its timeout.
web_context="$IMAGES_DIR/web"
mkdir -p "$web_context"
printf 'web 1\n' >"$web_context/index.html"
cat >"$web_context/serve" <<'SCRIPT'
#!/bin/sh
# Run httpd in the foreground with the given arguments; stop it on SIGTERM or SIGINT.
httpd -f "$@" &
pid=$!
trap 'kill -TERM "$pid"; wait "$pid"; exit 0' TERM INT
wait "$pid"
SCRIPT
chmod 755 "$web_context/serve"
cat >"$web_context/Dockerfile" <<DOCKERFILE
FROM $OPEN_REGISTRY/$BASE_REPOSITORY:$TAG
COPY serve /bin/serve
COPY index.html /www/index.html
EXPOSE 8080
HEALTHCHECK --interval=1s --timeout=2s --retries=3 CMD ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/bin/serve"]
CMD ["-p", "8080", "-h", "/www"]
DOCKERFILE
build_and_push "$WEB_REPOSITORY" "$web_context"
