// Stand-in for Traefik's nested module ./pkg/config/dynamic/ext, which the
// github.com/traefik/traefik/v3 module zip does not contain (it has its own go.mod).
module github.com/traefik/traefik/dynamic/ext

go 1.26.0
