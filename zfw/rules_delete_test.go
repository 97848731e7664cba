package zfw_test

import (
	"context"
	"errors"
	"testing"

	"github.com/zfw-go/zfw/zfw"
	"github.com/zfw-go/zfw/zfw/zfwtest"
)

// Delete of several rules removes all of them or, when one is not a
// rule added with Add, none.
func TestRulesDeleteIsAllOrNothing(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		delete   func(ids []uint32) []uint32
		wantErr  error
		wantLeft int
	}{
		{"all three", func(ids []uint32) []uint32 { return ids }, nil, 0},
		{"two", func(ids []uint32) []uint32 { return ids[:2] }, nil, 1},
		{"one twice", func(ids []uint32) []uint32 { return []uint32{ids[0], ids[0]} }, nil, 2},
		{"none", func([]uint32) []uint32 { return nil }, nil, 3},
		{"with one missing", func(ids []uint32) []uint32 { return append(ids[:2:2], 9999) }, zfw.ErrNotFound, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fw := zfwtest.New(t).Firewall
			var ids []uint32
			for _, dst := range []string{"10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16"} {
				id, err := fw.Rules().Add(ctx, steer(dst, "", 80, 80, 4000, "svc"))
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, id)
			}
			err := fw.Rules().Delete(ctx, tc.delete(ids)...)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Delete: %v, want %v", err, tc.wantErr)
			}
			if left := len(fw.Rules().List()); left != tc.wantLeft {
				t.Errorf("%d rules left, want %d", left, tc.wantLeft)
			}
		})
	}
}
