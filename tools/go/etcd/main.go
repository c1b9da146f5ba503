// Command etcd is the etcd server built from the Go module proxy: the module
// go.etcd.io/etcd/server/v3 has local replace lines, so `go install` refuses it.
// This is the same two-line main as upstream's server/main.go.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
