// Command zitibin builds the ziti executable that testenv/ziti runs, if it
// is not cached yet, and prints its path. CI runs it before the tests so the
// build is not charged to a test's timeout:
//
//	go run ./testenv/ziti/cmd/zitibin
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/sirupsen/logrus"

	"github.com/zfw-go/zfw/testenv/ziti"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	log := logrus.New()
	log.SetOutput(os.Stderr)
	path, err := ziti.Binary(ctx, ziti.BinaryOptions{Logger: log})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(path)
}
