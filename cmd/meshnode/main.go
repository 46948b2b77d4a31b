// Command meshnode runs an IICP node, directory, or client.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "meshnode: under construction")
	os.Exit(1)
}
