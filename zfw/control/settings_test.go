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
