// Command stratus is a self-hosted serverless platform that speaks AWS
// Lambda's APIs: `stratus server` runs a node, the other subcommands are
// its command-line client.
package main

import (
	"os"

	"github.com/stratus-faas/stratus/internal/cli"
)

func main() { os.Exit(cli.Main()) }
