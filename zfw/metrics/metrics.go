// Package metrics exports a zfw.Firewall's counters to Prometheus:
//
//	prometheus.MustRegister(metrics.NewCollector(fw))
//
// Packet counters come from the dataplane's per-CPU maps, summed; rule
// hits are labelled with the rule's id, service and action; gauges give
// rules, services and sessions against their capacities.
package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zfw-go/zfw/zfw"
)

// Collector is a prometheus.Collector over one Firewall.
type Collector struct {
	fw *zfw.Firewall

	packets, ruleHits              *prometheus.Desc
	rules, rulesMax, services      *prometheus.Desc
	sessions, sessionsMax          *prometheus.Desc
	prefixes, prefixesMax, scrapes *prometheus.Desc
}

// NewCollector returns a collector for fw.
func NewCollector(fw *zfw.Firewall) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("zfw_"+name, help, labels, nil)
	}
	return &Collector{
		fw:          fw,
		packets:     d("packets_total", "Packets by dataplane outcome.", "outcome"),
		ruleHits:    d("rule_hits_total", "Decisions made by each rule.", "rule_id", "service_id", "action", "direction"),
		rules:       d("rules", "Installed rules (intercepts included)."),
		rulesMax:    d("rules_max", "Capacity of range_map."),
		services:    d("services", "Registered intercepts."),
		prefixes:    d("prefixes", "Prefix keys per rule map.", "map"),
		prefixesMax: d("prefixes_max", "Capacity of each prefix map."),
		sessions:    d("sessions", "Tracked sessions.", "direction", "protocol"),
		sessionsMax: d("sessions_max", "Capacity of each session map."),
		scrapes:     d("scrape_errors_total", "Always 0 or 1: whether this scrape could not read a part of the dataplane.", "part"),
	}
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.packets, c.ruleHits, c.rules, c.rulesMax, c.services,
		c.prefixes, c.prefixesMax, c.sessions, c.sessionsMax, c.scrapes} {
		ch <- d
	}
}

// Collect reads the firewall and sends the metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	failed := func(part string, err error) {
		v := 0
		if err != nil {
			v = 1
		}
		gauge(c.scrapes, v, part)
	}

	u := c.fw.Usage()
	gauge(c.rules, u.Rules)
	gauge(c.rulesMax, u.MaxRules)
	gauge(c.services, u.Services)
	gauge(c.prefixesMax, u.MaxPrefixes)
	for m, n := range map[string]int{
		"zt_tproxy_map": u.Prefixes4, "zt_tproxy6_map": u.Prefixes6,
		"zt_egress_map": u.EgressPrefixes4, "zt_egress6_map": u.EgressPrefixes6,
	} {
		gauge(c.prefixes, n, m)
	}

	for _, r := range c.fw.Rules().List() {
		dir := "ingress"
		if r.Egress {
			dir = "egress"
		}
		counter(c.ruleHits, r.Hits, strconv.FormatUint(uint64(r.ID), 10), r.ServiceID, r.Action.String(), dir)
	}

	if u.InMemory {
		return // no packets, no sessions
	}
	st, err := c.fw.Stats()
	failed("stats", err)
	if err == nil {
		for outcome, v := range map[string]uint64{
			"unmanaged": st.Unmanaged, "not_ip": st.NotIP, "malformed": st.Malformed,
			"fragment": st.Fragments, "other_protocol": st.OtherProtocols,
			"cache_hit": st.CacheHits, "policy_lookup": st.PolicyLookups, "no_match": st.NoMatch, "kept_steering": st.KeptSteering,
			"passed": st.Passed, "denied": st.Denied, "steered": st.Steered,
			"no_listener": st.NoListener, "assign_failed": st.AssignFailed, "tuple_in_use": st.TupleInUse, "tuple_handed_over": st.TupleHandedOver,
			"reply": st.Replies, "tracked": st.Tracked, "echo_reply": st.EchoReplies,
			"fast_path": st.FastPath, "egress_denied": st.EgressDenied,
			"masqueraded": st.Masqueraded, "unmasqueraded": st.Unmasqueraded,
			"masquerade_no_port": st.MasqueradeNoPort,
			"events_limited":     st.EventsLimited, "events_lost": st.EventsLost, "events_unread": st.EventsUnread,
			"banned": st.Banned, "bans": st.Bans, "not_allowed": st.NotAllowed, "ot_dropped": st.OTDropped,
		} {
			counter(c.packets, v, outcome)
		}
	}
	n, err := c.fw.Sessions().Count()
	failed("sessions", err)
	if err == nil {
		gauge(c.sessions, n.TCP, "outbound", "tcp")
		gauge(c.sessions, n.UDP, "outbound", "udp")
		gauge(c.sessions, n.InboundTCP, "inbound", "tcp")
		gauge(c.sessions, n.InboundUDP, "inbound", "udp")
		gauge(c.sessionsMax, n.MaxTCP)
	}
}
