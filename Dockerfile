# vmaild as a container: a static binary (the SQLite driver is pure Go) run
# as the unprivileged user vmail.
#
#   docker build -t vmaild .
#   docker run -d -p 127.0.0.1:25:2525 -p 127.0.0.1:587:5587 -p 127.0.0.1:465:5465 \
#       -p 127.0.0.1:143:1143 -p 127.0.0.1:993:1993 -p 127.0.0.1:110:1110 \
#       -p 127.0.0.1:995:1995 -v vmaild-data:/var/lib/vmaild vmaild
#
# (this host only; drop the 127.0.0.1: once a real certificate is set)
#   docker exec -i CONTAINER vmaild domain add example.com
#
# Without a configuration it runs on the embedded default: SQLite and
# Maildir in the volume /var/lib/vmaild, the unprivileged ports below and a
# self-signed certificate. Mount a file over /etc/vmaild/vmaild.yaml to
# configure it (docker-compose.yml does); every command in the container,
# `docker exec … vmaild user add` included, reads it through VMAILD_CONFIG.

FROM golang:1.26-trixie AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /vmaild ./cmd/vmaild

FROM debian:trixie-slim
# ca-certificates: TLS to remote MX hosts, smarthosts and ldaps://;
# curl: the health check. uid/gid 5000 is the customary vmail owner of
# Dovecot Maildir trees, so a mounted existing tree keeps working.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 5000 vmail \
 && useradd --system --uid 5000 --gid vmail --home-dir /var/lib/vmaild --shell /usr/sbin/nologin vmail \
 && install -d -o vmail -g vmail -m 0750 /var/lib/vmaild
COPY --from=build /vmaild /usr/local/bin/vmaild
COPY deploy/vmaild.yaml /etc/vmaild/vmaild.yaml

ENV VMAILD_CONFIG=/etc/vmaild/vmaild.yaml \
    VMAILD_DATA=/var/lib/vmaild
VOLUME /var/lib/vmaild
WORKDIR /var/lib/vmaild
USER vmail

# smtp, submission, submissions, imap, imaps, pop3, pop3s, metrics: the
# defaults of `vmaild serve` and of deploy/compose/vmaild.yaml. Unprivileged
# ports, so no capability is needed; publish them on 25, 587, … .
EXPOSE 2525 5587 5465 1143 1993 1110 1995 9187
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9187/healthz"]
ENTRYPOINT ["/usr/local/bin/vmaild"]
CMD ["serve"]
