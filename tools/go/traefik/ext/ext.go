// Package ext is a stand-in for Traefik's extension point of the dynamic configuration.
// pkg/config/dynamic embeds ext.HTTP in HTTPConfiguration and ext.Router in Router
// (yaml:",inline"); no code in the traefik/v3 module uses fields of them, so empty
// structs suffice.
package ext

// HTTP is embedded in dynamic.HTTPConfiguration.
type HTTP struct{}

// Router is embedded in dynamic.Router.
type Router struct{}
