package ziti

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openziti/edge-api/rest_model"
	zitisdk "github.com/openziti/sdk-golang/ziti"

	"github.com/zfw-go/zfw/intercept"
	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/zfwtest"
)

// harness is an Interceptor over an in-memory firewall and fakes.
type harness struct {
	t         *testing.T
	fw        *zfwtest.Firewall
	reg       *recordingRegistrar
	resolver  *fakeResolver
	listeners *fakeListeners
	ic        *Interceptor
}

func newHarness(t *testing.T, withResolver bool, mutate ...func(*Options)) *harness {
	t.Helper()
	h := &harness{t: t, fw: zfwtest.New(t, zfw.Interface{Name: "eth0"}), resolver: newFakeResolver(), listeners: newFakeListeners()}
	h.reg = &recordingRegistrar{inner: h.fw.Firewall}
	opts := Options{Registrar: h.reg, Listeners: h.listeners}
	if withResolver {
		opts.Resolver = h.resolver
	}
	for _, m := range mutate {
		m(&opts)
	}
	ic, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.ic = ic
	return h
}

// update applies a service definition and fails the test on error.
func (h *harness) update(svc *rest_model.ServiceDetail) {
	h.t.Helper()
	if err := h.ic.Update(context.Background(), svc); err != nil {
		h.t.Fatalf("Update(%s): %v", *svc.Name, err)
	}
}

// verdict returns the service and port a TCP packet to dst is steered to,
// or "" and 0.
func (h *harness) verdict(dst string) (string, uint16) {
	v := h.fw.Verdict(zfwtest.TCP("192.168.1.5:40000", dst, "eth0"))
	if v.Action != zfw.TProxy {
		return "", 0
	}
	return v.ServiceID, v.TProxyPort
}

func v1(protocols, addresses, ports string, extra ...string) map[string]string {
	fields := append([]string{
		`"protocols": ` + protocols, `"addresses": ` + addresses, `"portRanges": ` + ports,
	}, extra...)
	return map[string]string{InterceptV1: "{" + strings.Join(fields, ",") + "}"}
}

func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v\nwant %#v", what, got, want)
	}
}

func TestUpdateInterceptsANewService(t *testing.T) {
	h := newHarness(t, true)
	h.update(detail(t, "s1", "web", v1(`["tcp"]`, `["10.0.0.5", "db.corp"]`, `[{"low": 80, "high": 81}]`)))

	equal(t, "listener calls", h.listeners.Calls(), []string{"open s1 [tcp] port 0"})
	equal(t, "registrar calls", h.reg.Calls(), []string{"register s1 40001 [10.0.0.5/32 100.64.0.2/32]"})
	for _, dst := range []string{"10.0.0.5:80", "10.0.0.5:81", "100.64.0.2:80"} {
		if id, port := h.verdict(dst); id != "s1" || port != 40001 {
			t.Errorf("TCP to %s goes to %q port %d, want s1 port 40001", dst, id, port)
		}
	}
	if id, _ := h.verdict("10.0.0.5:82"); id != "" {
		t.Errorf("TCP to an unlisted port goes to %q", id)
	}
	byID, ok := h.ic.Service("s1")
	if !ok || byID.Name != "web" || byID.Port != 40001 {
		t.Errorf("Service(s1) = %+v, %v", byID, ok)
	}
	byPort, ok := h.ic.ServiceForPort(40001)
	if !ok || byPort.ID != "s1" {
		t.Errorf("ServiceForPort(40001) = %+v, %v", byPort, ok)
	}
	if _, ok := h.ic.ServiceForPort(40002); ok {
		t.Error("ServiceForPort(40002) found a service")
	}
}

func TestChangeWithoutEffectLeavesDataplaneAndListenersAlone(t *testing.T) {
	h := newHarness(t, true)
	h.update(detail(t, "s1", "web", v1(`["tcp"]`, `["10.0.0.5", "db.corp"]`, `[{"low": 80, "high": 80}]`)))
	h.reg.Calls()
	h.listeners.Calls()

	changed := detail(t, "s1", "web", v1(`["tcp", "tcp"]`, `["db.corp", "10.0.0.5"]`, `[{"low": 80, "high": 80}]`,
		`"dialOptions": {"connectTimeoutSeconds": 30, "identity": "$dst_ip"}`))
	changed.UpdatedAt = changed.CreatedAt
	h.update(changed)

	equal(t, "registrar calls", h.reg.Calls(), []string(nil))
	equal(t, "listener calls", h.listeners.Calls(), []string(nil))
	svc, _ := h.ic.Service("s1")
	if svc.Config.DialTimeout != 30*time.Second || svc.DialIdentity.String() != "$dst_ip" || svc.Port != 40001 {
		t.Errorf("service after the change = %+v, want the new dial options and port 40001", svc)
	}
	if h.resolver.refs("db.corp") != 1 {
		t.Errorf("db.corp has %d owners, want 1", h.resolver.refs("db.corp"))
	}
}

func TestRealChangeReregistersWithTheSamePort(t *testing.T) {
	h := newHarness(t, true)
	h.update(detail(t, "s1", "web", v1(`["tcp"]`, `["10.0.0.5", "old.corp"]`, `[{"low": 80, "high": 80}]`)))
	h.reg.Calls()
	h.listeners.Calls()

	h.update(detail(t, "s1", "web-renamed", v1(`["tcp"]`, `["10.0.0.6", "new.corp"]`, `[{"low": 443, "high": 443}]`)))

	equal(t, "registrar calls", h.reg.Calls(), []string{"register s1 40001 [10.0.0.6/32 100.64.0.3/32]"})
	equal(t, "listener calls", h.listeners.Calls(), []string(nil))
	if id, port := h.verdict("10.0.0.6:443"); id != "s1" || port != 40001 {
		t.Errorf("new address goes to %q port %d", id, port)
	}
	if id, _ := h.verdict("10.0.0.5:80"); id != "" {
		t.Errorf("old address still goes to %q", id)
	}
	if h.resolver.refs("old.corp") != 0 || h.resolver.refs("new.corp") != 1 {
		t.Errorf("owners: old.corp %d, new.corp %d; want 0 and 1", h.resolver.refs("old.corp"), h.resolver.refs("new.corp"))
	}
	if svc, _ := h.ic.Service("s1"); svc.Name != "web-renamed" || svc.Intercept.ServiceName != "web-renamed" {
		t.Errorf("service = %+v, want the new name", svc)
	}
}

func TestProtocolChangeReopensListenersOnTheSamePort(t *testing.T) {
	h := newHarness(t, true)
	h.update(detail(t, "s1", "web", v1(`["tcp"]`, `["10.0.0.5"]`, `[{"low": 80, "high": 80}]`)))
	h.reg.Calls()
	h.listeners.Calls()

	h.update(detail(t, "s1", "web", v1(`["udp", "tcp"]`, `["10.0.0.5"]`, `[{"low": 80, "high": 80}]`)))

	equal(t, "listener calls", h.listeners.Calls(), []string{"open s1 [udp tcp] port 40001"})
	equal(t, "registrar calls", h.reg.Calls(), []string{"register s1 40001 [10.0.0.5/32]"})
	v := h.fw.Verdict(zfwtest.UDP("192.168.1.5:5000", "10.0.0.5:80", "eth0"))
	if v.Action != zfw.TProxy || v.TProxyPort != 40001 {
		t.Errorf("UDP verdict = %+v, want TPROXY to 40001", v)
	}
}

func TestRemoveUndoesEverything(t *testing.T) {
	h := newHarness(t, true)
	h.update(detail(t, "s1", "web", v1(`["tcp"]`, `["10.0.0.5", "db.corp", "*.apps.corp"]`, `[{"low": 80, "high": 80}]`)))
	h.reg.Calls()
	h.listeners.Calls()

	if err := h.ic.Remove(context.Background(), "s1"); err != nil {
		t.Fatal(err)
	}
	equal(t, "registrar calls", h.reg.Calls(), []string{"unregister s1"})
	equal(t, "listener calls", h.listeners.Calls(), []string{"close s1"})
	if h.resolver.refs("db.corp") != 0 || len(h.resolver.wildcardOwners("*.apps.corp")) != 0 {
		t.Error("the resolver still holds the service's names")
	}
	if _, ok := h.ic.Service("s1"); ok {
		t.Error("Service(s1) still found")
	}
	if _, ok := h.ic.ServiceForPort(40001); ok {
		t.Error("ServiceForPort(40001) still found")
	}
	if id, _ := h.verdict("10.0.0.5:80"); id != "" {
		t.Errorf("removed address still goes to %q", id)
	}
	if err := h.ic.Remove(context.Background(), "s1"); err != nil {
		t.Errorf("removing an unknown service: %v", err)
	}
}

func TestTwoServicesShareAHostname(t *testing.T) {
	h := newHarness(t, true)
	h.update(detail(t, "s1", "web", v1(`["tcp"]`, `["db.corp"]`, `[{"low": 80, "high": 80}]`)))
	h.update(detail(t, "s2", "db", v1(`["tcp"]`, `["db.corp", "10.0.0.0/24"]`, `[{"low": 5432, "high": 5432}]`)))

	equal(t, "registrar calls", h.reg.Calls(), []string{
		"register s1 40001 [100.64.0.2/32]",
		"register s2 40002 [10.0.0.0/24 100.64.0.2/32]",
	})
	if id, _ := h.verdict("100.64.0.2:80"); id != "s1" {
		t.Errorf("db.corp:80 goes to %q, want s1", id)
	}
	if id, _ := h.verdict("100.64.0.2:5432"); id != "s2" {
		t.Errorf("db.corp:5432 goes to %q, want s2", id)
	}
	if err := h.ic.Remove(context.Background(), "s1"); err != nil {
		t.Fatal(err)
	}
	if h.resolver.refs("db.corp") != 1 {
		t.Errorf("db.corp has %d owners after s1 left, want 1", h.resolver.refs("db.corp"))
	}
	if id, _ := h.verdict("100.64.0.2:5432"); id != "s2" {
		t.Errorf("after s1 left, db.corp:5432 goes to %q, want s2", id)
	}
}

func TestWildcardAllocationExtendsTheIntercept(t *testing.T) {
	h := newHarness(t, true)
	h.update(detail(t, "s1", "apps", v1(`["tcp"]`, `["*.apps.corp"]`, `[{"low": 443, "high": 443}]`)))
	equal(t, "listener calls", h.listeners.Calls(), []string{"open s1 [tcp] port 0"})
	equal(t, "registrar calls before any query", h.reg.Calls(), []string(nil))

	a, err := h.resolver.query("a.apps.corp")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "registrar calls", h.reg.Calls(), []string{"register s1 40001 [" + a.String() + "/32]"})
	if id, port := h.verdict(a.String() + ":443"); id != "s1" || port != 40001 {
		t.Errorf("a.apps.corp goes to %q port %d", id, port)
	}
	if _, err := h.resolver.query("a.apps.corp"); err != nil {
		t.Fatal(err)
	}
	equal(t, "registrar calls after a repeated query", h.reg.Calls(), []string(nil))
	b, err := h.resolver.query("b.apps.corp")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "registrar calls", h.reg.Calls(), []string{"register s1 40001 [" + a.String() + "/32 " + b.String() + "/32]"})

	// A change that keeps the wildcard keeps what it allocated.
	h.update(detail(t, "s1", "apps", v1(`["tcp"]`, `["*.apps.corp", "10.0.0.1"]`, `[{"low": 443, "high": 443}]`)))
	equal(t, "registrar calls after the change", h.reg.Calls(),
		[]string{"register s1 40001 [10.0.0.1/32 " + a.String() + "/32 " + b.String() + "/32]"})

	if err := h.ic.Remove(context.Background(), "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.resolver.query("c.apps.corp"); err == nil {
		t.Error("a query after the removal still matched the wildcard")
	}
}

func TestWildcardAllocationFailsTheQueryWhenRegisterFails(t *testing.T) {
	h := newHarness(t, true)
	h.update(detail(t, "s1", "apps", v1(`["tcp"]`, `["*.apps.corp", "10.0.0.1"]`, `[{"low": 443, "high": 443}]`)))
	h.reg.Calls()
	h.reg.failFor("s1", errors.New("map full"))

	if _, err := h.resolver.query("a.apps.corp"); err == nil || !strings.Contains(err.Error(), "map full") {
		t.Errorf("query error = %v, want the register error", err)
	}
	svc, _ := h.ic.Service("s1")
	equal(t, "registered addresses", svc.Intercept.Addresses, prefixes("10.0.0.1/32"))

	h.reg.failFor("s1", nil)
	a, err := h.resolver.query("a.apps.corp")
	if err != nil {
		t.Fatalf("query after recovery: %v", err)
	}
	equal(t, "registrar calls", h.reg.Calls(), []string{"register s1 40001 [10.0.0.1/32 " + a.String() + "/32]"})
}

func TestServiceWithoutDialPermissionIsIgnored(t *testing.T) {
	h := newHarness(t, true)
	bindOnly := detail(t, "s1", "web", v1(`["tcp"]`, `["10.0.0.5"]`, `[{"low": 80, "high": 80}]`))
	bindOnly.Permissions = rest_model.DialBindArray{rest_model.DialBindBind}
	h.update(bindOnly)
	equal(t, "registrar calls", h.reg.Calls(), []string(nil))
	equal(t, "listener calls", h.listeners.Calls(), []string(nil))

	// Losing the Dial permission stops the intercept.
	h.update(detail(t, "s1", "web", v1(`["tcp"]`, `["10.0.0.5"]`, `[{"low": 80, "high": 80}]`)))
	h.update(bindOnly)
	equal(t, "registrar calls", h.reg.Calls(), []string{"register s1 40001 [10.0.0.5/32]", "unregister s1"})
	if _, ok := h.ic.Service("s1"); ok {
		t.Error("service still intercepted after losing Dial")
	}
}

func TestConfigRemovedOrBrokenStopsTheIntercept(t *testing.T) {
	for _, tt := range []struct {
		name    string
		configs map[string]string
		wantErr bool
	}{
		{"config removed", map[string]string{}, false},
		{"config broken", v1(`["tcp"]`, `["10.0.0.5"]`, `[{"low": 90, "high": 80}]`), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, true)
			h.update(detail(t, "s1", "web", v1(`["tcp"]`, `["10.0.0.5", "db.corp"]`, `[{"low": 80, "high": 80}]`)))
			h.update(detail(t, "s2", "other", v1(`["tcp"]`, `["10.0.0.6"]`, `[{"low": 80, "high": 80}]`)))
			h.reg.Calls()

			err := h.ic.Update(context.Background(), detail(t, "s1", "web", tt.configs))
			var ce *ConfigError
			if tt.wantErr != errors.As(err, &ce) {
				t.Fatalf("Update error = %v, want a ConfigError: %v", err, tt.wantErr)
			}
			equal(t, "registrar calls", h.reg.Calls(), []string{"unregister s1"})
			if h.listeners.isOpen("s1") || h.resolver.refs("db.corp") != 0 {
				t.Error("s1's listeners or names were not released")
			}
			if id, _ := h.verdict("10.0.0.6:80"); id != "s2" {
				t.Errorf("the other service's traffic goes to %q", id)
			}
		})
	}
}

func TestFailureOfOneServiceLeavesTheOthersAlone(t *testing.T) {
	h := newHarness(t, true)
	h.reg.failFor("bad", errors.New("boom"))
	h.update(detail(t, "s1", "web", v1(`["tcp"]`, `["10.0.0.5"]`, `[{"low": 80, "high": 80}]`)))

	err := h.ic.Update(context.Background(), detail(t, "bad", "broken", v1(`["tcp"]`, `["10.0.0.7", "x.corp"]`, `[{"low": 80, "high": 80}]`)))
	if err == nil || !strings.Contains(err.Error(), "boom") || !strings.Contains(err.Error(), `"broken"`) {
		t.Errorf("Update error = %v, want the register error naming the service", err)
	}
	if h.listeners.isOpen("bad") || h.resolver.refs("x.corp") != 0 {
		t.Error("the failed service's listeners or names were not released")
	}
	if _, ok := h.ic.Service("bad"); ok {
		t.Error("the failed service is kept")
	}
	h.update(detail(t, "s2", "db", v1(`["tcp"]`, `["10.0.0.6"]`, `[{"low": 80, "high": 80}]`)))
	for dst, want := range map[string]string{"10.0.0.5:80": "s1", "10.0.0.6:80": "s2", "10.0.0.7:80": ""} {
		if id, _ := h.verdict(dst); id != want {
			t.Errorf("TCP to %s goes to %q, want %q", dst, id, want)
		}
	}
}

func TestHostnameFailureReleasesWhatWasTaken(t *testing.T) {
	h := newHarness(t, true)
	h.resolver.fail["b.corp"] = errors.New("range exhausted")
	err := h.ic.Update(context.Background(), detail(t, "s1", "web", v1(`["tcp"]`, `["a.corp", "b.corp"]`, `[{"low": 80, "high": 80}]`)))
	if err == nil || !strings.Contains(err.Error(), "range exhausted") {
		t.Fatalf("Update error = %v", err)
	}
	if h.resolver.refs("a.corp") != 0 || h.listeners.isOpen("s1") {
		t.Error("a.corp or the listeners were not released")
	}
}

func TestWithoutResolverNamesAreSkipped(t *testing.T) {
	h := newHarness(t, false)
	h.update(detail(t, "s1", "web", v1(`["tcp"]`, `["10.0.0.5", "db.corp", "*.apps.corp"]`, `[{"low": 80, "high": 80}]`)))
	h.update(detail(t, "s2", "names", v1(`["tcp"]`, `["db.corp"]`, `[{"low": 80, "high": 80}]`)))
	equal(t, "registrar calls", h.reg.Calls(), []string{"register s1 40001 [10.0.0.5/32]"})
	equal(t, "listener calls", h.listeners.Calls(), []string{"open s1 [tcp] port 0"})

	name, opts, err := h.ic.DialOptions(40001, Flow{Protocol: intercept.TCP, Destination: mustAddrPort("10.0.0.5:80")})
	if err != nil || name != "web" || opts == nil {
		t.Errorf("DialOptions = %q, %+v, %v", name, opts, err)
	}
}

func TestInterfacesLimitEveryIntercept(t *testing.T) {
	h := newHarness(t, true, func(o *Options) { o.Interfaces = []string{"eth0"} })
	h.update(detail(t, "s1", "web", v1(`["tcp"]`, `["10.0.0.5"]`, `[{"low": 80, "high": 80}]`)))
	svc, _ := h.ic.Service("s1")
	equal(t, "interfaces", svc.Intercept.Interfaces, []string{"eth0"})
}

func TestDialOptionsForAnAcceptedFlow(t *testing.T) {
	h := newHarness(t, true, func(o *Options) {
		o.Identity = func(context.Context) (TunnelerIdentity, error) {
			return TunnelerIdentity{Name: "edge-1", AppData: map[string]any{"site": "paris"}}, nil
		}
	})
	h.update(detail(t, "s1", "db", v1(`["tcp", "udp"]`, `["db.corp"]`, `[{"low": 5432, "high": 5432}]`,
		`"sourceIp": "$src_ip:$src_port"`,
		`"dialOptions": {"connectTimeoutSeconds": 9, "identity": "$tunneler_id.appData[site]-$dst_hostname"}`)))

	flow := Flow{Protocol: intercept.TCP, Source: mustAddrPort("192.168.1.5:40000"), Destination: mustAddrPort("100.64.0.2:5432")}
	name, opts, err := h.ic.DialOptions(40001, flow)
	if err != nil {
		t.Fatal(err)
	}
	if name != "db" || opts.ConnectTimeout != 9*time.Second || opts.Identity != "paris-db.corp" {
		t.Errorf("DialOptions = %q, %+v", name, opts)
	}
	var appData map[string]string
	if err := json.Unmarshal(opts.AppData, &appData); err != nil {
		t.Fatal(err)
	}
	equal(t, "AppData", appData, map[string]string{
		"dst_protocol": "tcp", "dst_ip": "100.64.0.2", "dst_port": "5432",
		"dst_hostname": "db.corp", "source_addr": "192.168.1.5:40000",
	})
	if _, _, err := h.ic.DialOptions(40999, flow); err == nil {
		t.Error("DialOptions on an unknown port succeeded")
	}

	// A rename is dialled by its new name at once.
	h.update(detail(t, "s1", "db-v2", v1(`["tcp", "udp"]`, `["db.corp"]`, `[{"low": 5432, "high": 5432}]`)))
	if name, _, _ := h.ic.DialOptions(40001, flow); name != "db-v2" {
		t.Errorf("name after rename = %q", name)
	}
}

func TestCloseStopsEveryIntercept(t *testing.T) {
	h := newHarness(t, true)
	h.update(detail(t, "s1", "web", v1(`["tcp"]`, `["10.0.0.5", "a.corp"]`, `[{"low": 80, "high": 80}]`)))
	h.update(detail(t, "s2", "db", v1(`["tcp"]`, `["*.apps.corp"]`, `[{"low": 80, "high": 80}]`)))
	h.reg.Calls()
	if err := h.ic.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	equal(t, "registrar calls", h.reg.Calls(), []string{"unregister s1"})
	equal(t, "services", h.ic.Services(), []Service{})
	if h.listeners.isOpen("s1") || h.listeners.isOpen("s2") || h.resolver.refs("a.corp") != 0 ||
		len(h.resolver.wildcardOwners("*.apps.corp")) != 0 {
		t.Error("Close left listeners or names behind")
	}
	equal(t, "firewall intercepts", len(h.fw.Intercepts()), 0)
}

func TestLongServiceNamesAreCutForTheDataplane(t *testing.T) {
	h := newHarness(t, true)
	long := strings.Repeat("é", 40) + "\tx"
	h.update(detail(t, "s1", long, v1(`["tcp"]`, `["10.0.0.5"]`, `[{"low": 80, "high": 80}]`)))
	svc, _ := h.ic.Service("s1")
	if svc.Name != long || len(svc.Intercept.ServiceName) != 62 || strings.ContainsRune(svc.Intercept.ServiceName, '\t') {
		t.Errorf("names: dial %q, dataplane %q", svc.Name, svc.Intercept.ServiceName)
	}
}

func TestEventsAreAppliedInOrderOffTheSDKGoroutine(t *testing.T) {
	entered := make(chan string, 16)
	release := make(chan struct{})
	var once sync.Once
	h := newHarness(t, true)
	cancelled := make(chan struct{})
	h.reg.onCall = func(call string) {
		entered <- call
		// The first call blocks until the test has sent every event.
		once.Do(func() { <-release })
		// The last goes on only once Run's context has ended.
		if strings.HasPrefix(call, "register b") {
			<-cancelled
		}
	}
	zctx := &fakeContext{
		events:   &fakeEventer{},
		identity: &rest_model.IdentityDetail{Name: ptr("edge-1")},
	}
	detach := h.ic.Attach(zctx)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.ic.Run(ctx) }()

	a := detail(t, "a", "svc-a", v1(`["tcp"]`, `["10.0.0.1"]`, `[{"low": 80, "high": 80}]`))
	aChanged := detail(t, "a", "svc-a", v1(`["tcp"]`, `["10.0.0.2"]`, `[{"low": 80, "high": 80}]`,
		`"sourceIp": "$tunneler_id.name"`))
	b := detail(t, "b", "svc-b", v1(`["tcp"]`, `["10.0.0.3"]`, `[{"low": 80, "high": 80}]`))
	if n := zctx.events.emit(zctx, zitisdk.ServiceAdded, a); n != 1 {
		t.Fatalf("%d Added listeners, want 1", n)
	}
	<-entered // Run is now blocked inside Register for a.
	// The SDK goroutine (this one) is never held up by the blocked worker.
	zctx.events.emit(zctx, zitisdk.ServiceChanged, aChanged)
	zctx.events.emit(zctx, zitisdk.ServiceRemoved, a)
	zctx.events.emit(zctx, zitisdk.ServiceAdded, b)
	close(release)

	var got []string
	for range 3 {
		got = append(got, <-entered)
	}
	equal(t, "calls", got, []string{
		"register a 40001 [10.0.0.2/32]",
		"unregister a",
		"register b 40002 [10.0.0.3/32]",
	})
	if err := h.ic.Run(ctx); err == nil {
		t.Error("a second Run started")
	}
	// Run finishes the event it is applying before it stops.
	cancel()
	close(cancelled)
	<-done
	if svc, ok := h.ic.Service("b"); !ok || svc.Name != "svc-b" {
		t.Errorf("Service(b) = %+v, %v", svc, ok)
	}

	detach()
	if n := zctx.events.emit(zctx, zitisdk.ServiceAdded, a); n != 0 {
		t.Errorf("%d listeners left after detach", n)
	}
}

func TestRunStopsWithItsContext(t *testing.T) {
	h := newHarness(t, true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.ic.Run(ctx) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	// Events queued while no Run is going are applied by the next one,
	// even when an earlier Run took the wake-up.
	h.ic.Enqueue(Event{Type: zitisdk.ServiceAdded, Service: *detail(t, "s1", "web", v1(`["tcp"]`, `["10.0.0.5"]`, `[{"low": 80, "high": 80}]`))})
	<-h.ic.wake
	applied := make(chan string, 1)
	h.reg.onCall = func(call string) { applied <- call }
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go func() { done <- h.ic.Run(ctx2) }()
	if call := <-applied; call != "register s1 40001 [10.0.0.5/32]" {
		t.Errorf("call = %q", call)
	}
	cancel2()
	<-done
}

func TestAttachTakesTemplateIdentityFromTheContext(t *testing.T) {
	h := newHarness(t, true)
	appData := &rest_model.Tags{SubTags: rest_model.SubTags{"site": "paris"}}
	zctx := &fakeContext{events: &fakeEventer{}, identity: &rest_model.IdentityDetail{Name: ptr("edge-1"), AppData: appData}}
	defer h.ic.Attach(zctx)()
	h.update(detail(t, "s1", "web", v1(`["tcp"]`, `["10.0.0.5"]`, `[{"low": 80, "high": 80}]`,
		`"sourceIp": "$tunneler_id.name"`, `"dialOptions": {"identity": "$tunneler_id.appData[site]"}`)))
	svc, _ := h.ic.Service("s1")
	if svc.SourceIP.String() != "edge-1" || svc.DialIdentity.String() != "paris" {
		t.Errorf("templates = %q, %q; want edge-1, paris", svc.SourceIP, svc.DialIdentity)
	}
}

func TestNewRequiresRegistrarAndListeners(t *testing.T) {
	if _, err := New(Options{Listeners: newFakeListeners()}); err == nil {
		t.Error("New without a Registrar succeeded")
	}
	if _, err := New(Options{Registrar: &recordingRegistrar{}}); err == nil {
		t.Error("New without Listeners succeeded")
	}
}

func mustAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func ptr[T any](v T) *T { return &v }
