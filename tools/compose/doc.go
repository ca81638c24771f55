// Package compose pins the Docker Compose that vmaild's tests use as the
// oracle for docker-compose.yml: test.sh builds its command from this
// module (go build -C tools/compose github.com/docker/compose/v5/cmd), so
// that `docker compose config` runs on a machine with neither Docker nor
// Compose installed. It is a module of its own, so that Compose's
// dependencies stay out of vmaild's.
package compose
