//go:build nodemo

package main

import (
	"fmt"
	"os"
)

// runDemo stands in for the demo in a binary built with -tags nodemo, which
// leaves out the embedded Kafka broker (franz-go's kfake and kgo, about
// 7 MB) and the fleet and attack simulators.
func runDemo([]string) int {
	fmt.Fprintln(os.Stderr, "vigil demo: this binary was built with -tags nodemo, without the embedded Kafka broker; build it without the tag (make build) to run the demo")
	return 2
}
