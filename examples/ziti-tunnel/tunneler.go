package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	sdk "github.com/openziti/sdk-golang/ziti"
	"github.com/sirupsen/logrus"

	"github.com/zfw-go/zfw/intercept/dns"
	"github.com/zfw-go/zfw/intercept/ziti"
	"github.com/zfw-go/zfw/zfw"
)

// Defaults of the tunneler's settings, those of OpenZiti's Go tunneler.
const (
	defaultRefreshInterval = 15 * time.Second
	defaultUDPIdleTimeout  = 5 * time.Minute
	// authRetry is the pause between failed authentications.
	authRetry = 5 * time.Second
)

// config is what the tunneler runs with; the command line fills it in.
type config struct {
	// Identity is the enrolled identity file.
	Identity string
	// Interfaces are the interfaces whose incoming traffic is
	// intercepted.
	Interfaces []string
	// DNSAddr is where the DNS server listens; empty runs none, and
	// hostname and wildcard intercepts are skipped.
	DNSAddr string
	// DNSRange is where hostnames get their addresses from.
	DNSRange netip.Prefix
	// PinPath is the dataplane's pin folder on a bpf filesystem.
	PinPath string
	// RefreshInterval is how often the services are polled.
	RefreshInterval time.Duration
	// UDPIdleTimeout ends a UDP flow that carried nothing for so long.
	UDPIdleTimeout time.Duration
	// InNamespace runs fn where the dataplane belongs: it attaches to
	// the interfaces, opens the DNS and TPROXY sockets, and dials the
	// targets of hosted services, there. The Ziti context's connections
	// are opened where the tunneler runs.
	// Nil runs fn in place. Tests pass a network namespace's Do.
	InNamespace func(fn func() error) error
	// Logger receives the logs.
	Logger logrus.FieldLogger
}

// tunneler intercepts the services an identity may dial and carries their
// connections over Ziti, and hosts the services it may bind.
type tunneler struct {
	cfg       config
	log       logrus.FieldLogger
	zctx      sdk.Context
	ic        *ziti.Interceptor
	listeners *listenerSet
	// attached is closed once ic is attached to zctx; ic and zctx are
	// set by then.
	attached chan struct{}
}

// newTunneler checks cfg and fills in its defaults.
func newTunneler(cfg config) (*tunneler, error) {
	if cfg.Identity == "" {
		return nil, errors.New("an identity file is required")
	}
	if len(cfg.Interfaces) == 0 {
		return nil, errors.New("at least one interface is required")
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = defaultRefreshInterval
	}
	if cfg.UDPIdleTimeout <= 0 {
		cfg.UDPIdleTimeout = defaultUDPIdleTimeout
	}
	if !cfg.DNSRange.IsValid() {
		cfg.DNSRange = dns.DefaultRange
	}
	if cfg.PinPath == "" {
		cfg.PinPath = zfw.DefaultPinPath
	}
	if cfg.InNamespace == nil {
		cfg.InNamespace = func(fn func() error) error { return fn() }
	}
	if cfg.Logger == nil {
		cfg.Logger = logrus.StandardLogger()
	}
	return &tunneler{cfg: cfg, log: cfg.Logger, attached: make(chan struct{})}, nil
}

// Run intercepts until ctx is done, then stops intercepting everything it
// intercepted, releases the dataplane and returns nil. It returns an error
// when it cannot start.
func (t *tunneler) Run(ctx context.Context) error {
	zcfg, err := sdk.NewConfigFromFile(t.cfg.Identity)
	if err != nil {
		return fmt.Errorf("load identity %s: %w", t.cfg.Identity, err)
	}
	zcfg.ConfigTypes = []string{ziti.InterceptV1, ziti.TunnelerClientV1, ziti.HostV1, ziti.HostV2}
	zctx, err := sdk.NewContextWithOpts(zcfg, &sdk.Options{RefreshInterval: t.cfg.RefreshInterval})
	if err != nil {
		return fmt.Errorf("ziti context for %s: %w", t.cfg.Identity, err)
	}
	defer zctx.Close()
	t.zctx = zctx
	// sdk-golang v1.5.0: NewContext starts fetching the controller's
	// version in the background, and the first authentication writes the
	// TLS settings that fetch reads. Waiting for the fetch (it runs once)
	// before anything authenticates removes the race; attaching the
	// Interceptor touches neither, so it may come after.
	if impl, ok := zctx.(*sdk.ContextImpl); ok {
		impl.CtrlClt.API.ControllerSupportsHa()
	}

	var fw *zfw.Firewall
	err = t.cfg.InNamespace(func() error {
		ifaces := make([]zfw.Interface, len(t.cfg.Interfaces))
		for k, name := range t.cfg.Interfaces {
			ifaces[k] = zfw.Interface{Name: name}
		}
		var err error
		fw, err = zfw.New(zfw.Options{Interfaces: ifaces, PinPath: t.cfg.PinPath, Logger: t.log})
		return err
	})
	if err != nil {
		return fmt.Errorf("dataplane: %w", err)
	}
	defer func() {
		if err := fw.Close(); err != nil {
			t.log.WithError(err).Warn("Closing the dataplane failed")
		}
	}()

	var resolver ziti.Resolver
	if t.cfg.DNSAddr != "" {
		server, err := t.startDNS(ctx)
		if err != nil {
			return err
		}
		defer server.Close()
		resolver = server
	}

	t.listeners = newListenerSet(t)
	ic, err := ziti.New(ziti.Options{
		Registrar: fw,
		Listeners: t.listeners,
		Resolver:  resolver,
		Logger:    t.log,
	})
	if err != nil {
		return fmt.Errorf("interceptor: %w", err)
	}
	t.ic = ic
	detach := ic.Attach(zctx)
	defer detach()
	host := newHoster(zctx, fw.LocalSources(), t.cfg.InNamespace, t.cfg.UDPIdleTimeout, t.log)
	detachHost := host.attach()
	defer detachHost()
	close(t.attached)

	runCtx, stopRun := context.WithCancel(ctx)
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		_ = ic.Run(runCtx)
	}()
	hostDone := make(chan struct{})
	go func() {
		defer close(hostDone)
		host.run(runCtx)
	}()
	defer func() {
		stopRun()
		<-runDone
		<-hostDone
		// ctx is done by now: unregister with a fresh one.
		if err := ic.Close(context.Background()); err != nil {
			t.log.WithError(err).Warn("Unregistering the services failed")
		}
		t.listeners.closeAll()
	}()

	if err := t.authenticate(ctx); err != nil {
		return nil // ctx ended first: a normal stop.
	}
	t.log.WithField("interfaces", t.cfg.Interfaces).Info("Intercepting")
	<-ctx.Done()
	t.log.Info("Stopping")
	return nil
}

// startDNS starts the DNS server where the dataplane lives.
func (t *tunneler) startDNS(ctx context.Context) (*dns.Server, error) {
	server, err := dns.New(dns.Options{Addr: t.cfg.DNSAddr, Range: t.cfg.DNSRange, Logger: t.log})
	if err != nil {
		return nil, fmt.Errorf("dns server: %w", err)
	}
	if err := t.cfg.InNamespace(func() error { return server.Start(ctx) }); err != nil {
		return nil, fmt.Errorf("dns server on %s: %w", t.cfg.DNSAddr, err)
	}
	t.log.WithFields(logrus.Fields{"addr": server.LocalAddr(), "range": server.Range()}).Info("DNS server listening")
	return server, nil
}

// authenticate logs in, retrying until it works or ctx is done. The first
// success delivers the services to the attached Interceptor.
func (t *tunneler) authenticate(ctx context.Context) error {
	for {
		err := t.zctx.Authenticate()
		if err == nil {
			return nil
		}
		t.log.WithError(err).Warnf("Authentication failed; retrying in %s", authRetry)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(authRetry):
		}
	}
}
