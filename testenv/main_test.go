package testenv

import (
	"os"
	"testing"
)

// TestMain fails the package's run if its tests leave namespaces, pins,
// links or goroutines behind.
func TestMain(m *testing.M) { os.Exit(Main(m)) }
