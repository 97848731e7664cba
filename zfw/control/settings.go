package control

import (
	"fmt"

	"github.com/zfw-go/zfw/zfw"
)

// AllInterfaces names every managed interface in SetInterface, as
// "all" does on the C zfw's command line.
const AllInterfaces = "all"

// settingField is one interface setting, by the C zfw's long option name.
type settingField struct {
	name  string
	field func(*zfw.InterfaceSettings) *bool
	// invert: the field says the opposite (ipv6-enable clears DisableIPv6).
	invert bool
}

func settingFields() []settingField {
	return []settingField{
		{"icmp-echo", func(s *zfw.InterfaceSettings) *bool { return &s.ICMPEcho }, false},
		{"verbose", func(s *zfw.InterfaceSettings) *bool { return &s.Verbose }, false},
		{"disable-ssh", func(s *zfw.InterfaceSettings) *bool { return &s.DisableSSH }, false},
		{"per-interface-rules", func(s *zfw.InterfaceSettings) *bool { return &s.PerInterfaceRules }, false},
		{"set-tun-mode", func(s *zfw.InterfaceSettings) *bool { return &s.TunnelMode }, false},
		{"vrrp-enable", func(s *zfw.InterfaceSettings) *bool { return &s.VRRP }, false},
		{"enable-eapol", func(s *zfw.InterfaceSettings) *bool { return &s.EAPOL }, false},
		{"ddos-filtering", func(s *zfw.InterfaceSettings) *bool { return &s.DDoSProtection }, false},
		{"outbound-filtering", func(s *zfw.InterfaceSettings) *bool { return &s.OutboundFilter }, false},
		{"masquerade", func(s *zfw.InterfaceSettings) *bool { return &s.Masquerade }, false},
		{"ipv6-enable", func(s *zfw.InterfaceSettings) *bool { return &s.DisableIPv6 }, true},
		{"pass-non-tuple", func(s *zfw.InterfaceSettings) *bool { return &s.PassNonTuple }, false},
		{"ot-filtering", func(s *zfw.InterfaceSettings) *bool { return &s.OTFiltering }, false},
	}
}

// Settings are the names SetInterface and ApplySetting take: the C zfw's
// long option names of the interface settings.
func Settings() []string {
	var names []string
	for _, f := range settingFields() {
		names = append(names, f.name)
	}
	return names
}

// ApplySetting turns the named setting on or off in s.
func ApplySetting(s *zfw.InterfaceSettings, setting string, on bool) error {
	for _, f := range settingFields() {
		if f.name == setting {
			*f.field(s) = on != f.invert
			return nil
		}
	}
	return fmt.Errorf("unknown interface setting %q", setting)
}
