// Package bpfobj holds the compiled BPF objects and the Go types bpf2go
// generates from bpf/include/zfw.h. It is internal so that generated names
// never become public API; the C sources live in bpf/.
package bpfobj

//go:generate go tool bpf2go -go-package bpfobj -output-stem zfw -target bpfel -type config -type iface_settings -type iface_addrs4 -type iface_addrs6 -type prefix_key -type prefix6_key -type prefix_value -type prefix_lens -type range_entry -type if_list -type tproxy_ext_key -type service_id -type rule_record -type tuple_key -type tcp_state -type udp_state -type inbound_state -type masq_key -type masq_value -type masq_reverse_key -type masq_reverse_value -type icmp_key -type icmp_state -type tcp_flag -type event -type event_kind -type event_version -type track -type event_budget -type addr_key -type syn_count -type ban -type modbus_key -type tun_config -type tun_key -type tun_state -type flow_entry -type flow_kind -type stat -type action -type iface_flag -type reason -type range_flag -type rule_kind Zfw ../../bpf/zfw.c -- -I../../bpf/include -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu -O2 -g -Wall -Werror
