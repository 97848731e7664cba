// Package ziti turns the services of an OpenZiti identity
// (github.com/openziti/sdk-golang) into intercepts and keeps them in sync
// with the controller.
//
// A service is intercepted when the identity may dial it and it has a
// client config: intercept.v1, or the legacy ziti-tunneler-client.v1.
// DecodeConfig reads and checks that config; its IP addresses and CIDRs
// are intercepted as they are, its hostnames and "*.domain" wildcards
// through a Resolver (the tunneler's DNS server) that hands out their
// addresses.
//
// An Interceptor applies the service events. For each intercepted service
// it asks the tunneler's Listeners for TPROXY listeners (one port, shared
// by TCP and UDP) and registers the service's intercept with a Registrar,
// usually a *zfw.Firewall. The call order is:
//
//	zctx, _ := sdk.NewContext(cfg) // cfg.ConfigTypes: intercept.v1, ziti-tunneler-client.v1
//	ic, _ := ziti.New(ziti.Options{Registrar: fw, Listeners: tunneler, Resolver: dnsServer})
//	detach := ic.Attach(zctx)      // before Authenticate, which sends the first events
//	defer detach()
//	go ic.Run(ctx)                 // applies the events, in order, off the SDK's goroutine
//	err := zctx.Authenticate()
//	…
//	cancel(); <-runDone; ic.Close(context.Background())
//
// For each flow a listener accepts, the tunneler asks DialOptions for the
// service's current name and the options to dial it with, including the
// AppData the hosting side expects:
//
//	name, opts, err := ic.DialOptions(port, ziti.Flow{Protocol: intercept.TCP, Source: src, Destination: dst})
//	conn, err := zctx.DialWithOptions(name, opts)
package ziti
