package ziti_test

import (
	"os"
	"testing"

	"github.com/zfw-go/zfw/testenv"
)

// TestMain fails the package's run if its tests leave namespaces, pins,
// links or goroutines behind.
func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
