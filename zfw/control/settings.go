package control

import (
	"fmt"

	"github.com/zfw-go/zfw/zfw"
)

// AllInterfaces names every managed interface in SetInterface, as
// "all" does on the C zfw's command line.
const AllInterfaces = "all"

// settingField is one interface setting, by the C zfw's long option name
// and by its label in the C zfw's list-diag (zfw -L -E).
type settingField struct {
	name, label string
	field       func(*zfw.InterfaceSettings) *bool
	// invert: the field says the opposite (ipv6-enable clears DisableIPv6).
	invert bool
}

// settingFields lists the settings in the order zfw -L -E shows them.
func settingFields() []settingField {
	return []settingField{
		{"icmp-echo", "icmp echo", func(s *zfw.InterfaceSettings) *bool { return &s.ICMPEcho }, false},
		{"verbose", "verbose", func(s *zfw.InterfaceSettings) *bool { return &s.Verbose }, false},
		{"disable-ssh", "ssh disable", func(s *zfw.InterfaceSettings) *bool { return &s.DisableSSH }, false},
		{"per-interface-rules", "per interface", func(s *zfw.InterfaceSettings) *bool { return &s.PerInterfaceRules }, false},
		{"set-tun-mode", "tun mode intercept", func(s *zfw.InterfaceSettings) *bool { return &s.TunnelMode }, false},
		{"vrrp-enable", "vrrp enable", func(s *zfw.InterfaceSettings) *bool { return &s.VRRP }, false},
		{"enable-eapol", "eapol enable", func(s *zfw.InterfaceSettings) *bool { return &s.EAPOL }, false},
		{"pass-non-tuple", "pass non tuple", func(s *zfw.InterfaceSettings) *bool { return &s.PassNonTuple }, false},
		{"ipv6-enable", "ipv6 enable", func(s *zfw.InterfaceSettings) *bool { return &s.DisableIPv6 }, true},
		{"outbound-filtering", "outbound filter", func(s *zfw.InterfaceSettings) *bool { return &s.OutboundFilter }, false},
		{"masquerade", "masquerade", func(s *zfw.InterfaceSettings) *bool { return &s.Masquerade }, false},
		{"ddos-filtering", "ddos filtering", func(s *zfw.InterfaceSettings) *bool { return &s.DDoSProtection }, false},
		{"ot-filtering", "ot filtering", func(s *zfw.InterfaceSettings) *bool { return &s.OTFiltering }, false},
	}
}

// SettingState is one setting of an interface: its name (as Settings
// gives it), its label in zfw -L -E, and whether it is on.
type SettingState struct {
	Name, Label string
	On          bool
}

// States returns every setting of s, in the order zfw -L -E lists them.
func States(s zfw.InterfaceSettings) []SettingState {
	var out []SettingState
	for _, f := range settingFields() {
		out = append(out, SettingState{Name: f.name, Label: f.label, On: *f.field(&s) != f.invert})
	}
	return out
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
