package control

import (
	"reflect"
	"testing"

	"github.com/zfw-go/zfw/zfw"
)

func TestEverySettingTurnsOneFieldOnAndOff(t *testing.T) {
	seen := map[string]bool{}
	for _, name := range Settings() {
		var on zfw.InterfaceSettings
		if err := ApplySetting(&on, name, true); err != nil {
			t.Fatal(err)
		}
		off := on
		if err := ApplySetting(&off, name, false); err != nil {
			t.Fatal(err)
		}
		changed := 0
		vOn, vOff := reflect.ValueOf(on), reflect.ValueOf(off)
		for i := range vOn.NumField() {
			if vOn.Field(i).Bool() != vOff.Field(i).Bool() {
				changed++
				field := vOn.Type().Field(i).Name
				if seen[field] {
					t.Errorf("%s: field %s already belongs to another setting", name, field)
				}
				seen[field] = true
			}
		}
		if changed != 1 {
			t.Errorf("%s changes %d fields, want 1", name, changed)
		}
	}
	var s zfw.InterfaceSettings
	if ApplySetting(&s, "ipv6-enable", false); !s.DisableIPv6 {
		t.Error("ipv6-enable off must set DisableIPv6")
	}
	if err := ApplySetting(&s, "warp-drive", true); err == nil {
		t.Error("an unknown setting was accepted")
	}
}

func TestStatesReadWhatApplySettingWrote(t *testing.T) {
	labels := map[string]bool{}
	for _, name := range Settings() {
		for _, on := range []bool{true, false} {
			var s zfw.InterfaceSettings
			if !on { // start from the opposite, so the read cannot be the zero value by chance
				for _, n := range Settings() {
					ApplySetting(&s, n, true)
				}
			}
			if err := ApplySetting(&s, name, on); err != nil {
				t.Fatal(err)
			}
			for _, st := range States(s) {
				if st.Name == name && st.On != on {
					t.Errorf("%s set %v, States says %v", name, on, st.On)
				}
			}
		}
	}
	for _, st := range States(zfw.InterfaceSettings{}) {
		if st.Label == "" || labels[st.Label] {
			t.Errorf("%s: label %q empty or repeated", st.Name, st.Label)
		}
		labels[st.Label] = true
	}
	if n := len(States(zfw.InterfaceSettings{})); n != len(Settings()) {
		t.Errorf("%d states for %d settings", n, len(Settings()))
	}
}
