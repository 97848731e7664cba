package rulestore

import (
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/zfw-go/zfw/internal/bpfobj"
)

// config is config_map's value at a rule generation.
func (t *Table) config(generation uint32) bpfobj.ZfwConfig {
	return bpfobj.ZfwConfig{
		Mark:             t.Mark,
		Generation:       generation,
		CacheEpoch:       t.cacheEpoch,
		Ncpus:            t.ncpus,
		TcpEstablishedNs: uint64(t.Timeouts.TCPEstablished),
		TcpTransitoryNs:  uint64(t.Timeouts.TCPTransitory),
		UdpNs:            uint64(t.Timeouts.UDP),
		IcmpEchoNs:       uint64(t.Timeouts.ICMPEcho),
		EventsPerSec:     t.EventsPerSec,
		SynPerSec:        uint32(t.SYNFlood.SYNsPerSecond),
		BanNs:            uint64(t.SYNFlood.BanDuration),
		ProtectedPorts:   t.ProtectedPorts,
		AllowedSources:   t.AllowedSources,
	}
}

// VoidFlowCache makes the dataplane ignore every flow it cached, for a
// change the cache cannot see: interface settings, sessions removed.
func (t *Table) VoidFlowCache() error {
	t.cacheEpoch++
	return t.WriteConfig()
}

// WriteConfig stores the mark, generation and timeouts for the program.
func (t *Table) WriteConfig() error {
	cfg := t.config(t.Generation)
	if err := t.Maps.Config.Update(uint32(0), &cfg, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("config_map: update: %w", err)
	}
	return nil
}
