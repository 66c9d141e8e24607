package config

import (
	"flag"
	"strings"
	"testing"
	"time"
)

func TestDefaultsValid(t *testing.T) {
	c := Defaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9000" || c.HTTPListen != "127.0.0.1:8080" || c.IdleTimeout != 15*time.Minute || c.Region != "us-east-1" || c.MaxConcurrency != 1000 {
		t.Errorf("defaults: %+v", c)
	}
	if strings.HasPrefix(c.DataDir, "/tmp") {
		t.Errorf("default data folder under /tmp: %s", c.DataDir)
	}
}

func TestFlagsAndValidate(t *testing.T) {
	tests := []struct {
		args []string
		ok   bool
	}{
		{nil, true},
		{[]string{"--listen", "127.0.0.1:0", "--idle-timeout", "5s", "--region", "eu-west-1"}, true},
		{[]string{"--listen", "nonsense"}, false},
		{[]string{"--idle-timeout", "0s"}, false},
		{[]string{"--region", "mars"}, false},
		{[]string{"--max-concurrency", "0"}, false},
		{[]string{"--data-dir", ""}, false},
		{[]string{"--listen", "0.0.0.0:9000"}, false}, // plain HTTP beyond loopback
		{[]string{"--http-listen", "10.0.0.1:8080"}, false},
		{[]string{"--listen", "0.0.0.0:9000", "--allow-plain-http"}, true},
		{[]string{"--listen", "[::]:9000", "--tls-cert", "c.pem", "--tls-key", "k.pem"}, true},
		{[]string{"--tls-cert", "c.pem"}, false},
		{[]string{"--dev-auth"}, true},
		{[]string{"--dev-auth", "--listen", "localhost:9000"}, true},
		{[]string{"--dev-auth", "--listen", "0.0.0.0:9000", "--allow-plain-http"}, false},
	}
	for _, tt := range tests {
		c := Defaults()
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		c.Flags(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); (err == nil) != tt.ok {
			t.Errorf("%v: %v", tt.args, err)
		}
	}
}
