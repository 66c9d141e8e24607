// Command netprobe is a function that tries what a hostile function would
// on the network: connecting to the host's listeners, reading its sockets
// in /proc/net, and listening for connections from outside; and what a
// function must be able to do: reach the Stratus API with the SDK.
package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

type event struct {
	Dial   []string `json:"dial"`   // addresses to connect to
	Listen []string `json:"listen"` // addresses to listen on (kept open)
	// GatewayPort, when set, is dialled on the default gateway too.
	GatewayPort int `json:"gatewayPort"`
}

type result struct {
	Dial     map[string]string `json:"dial"`
	Listen   map[string]string `json:"listen"`
	Sockets  []string          `json:"sockets"` // local addresses in /proc/net/tcp{,6}
	Identity string            `json:"identity"`
	Endpoint string            `json:"endpoint"`
	Runtime  string            `json:"runtime"`
	Addrs    []string          `json:"addrs"` // the instance's own addresses
	Gateway  string            `json:"gateway"`
}

// held keeps listeners open after the invocation, for the test to try.
var held []net.Listener

func handle(ctx context.Context, e event) (result, error) {
	r := result{Dial: map[string]string{}, Listen: map[string]string{},
		Endpoint: os.Getenv("AWS_ENDPOINT_URL"), Runtime: os.Getenv("AWS_LAMBDA_RUNTIME_API")}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			r.Addrs = append(r.Addrs, a.String())
		}
	}
	r.Gateway = gateway()
	if e.GatewayPort != 0 && r.Gateway != "" {
		e.Dial = append(e.Dial, net.JoinHostPort(r.Gateway, strconv.Itoa(e.GatewayPort)))
	}
	for _, a := range e.Dial {
		c, err := net.DialTimeout("tcp", a, 2*time.Second)
		if err != nil {
			r.Dial[a] = err.Error()
			continue
		}
		c.Close()
		r.Dial[a] = "connected"
	}
	for _, a := range e.Listen {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			r.Listen[a] = err.Error()
			continue
		}
		held = append(held, ln)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Write([]byte("from the instance\n"))
				c.Close()
			}
		}()
		r.Listen[a] = "listening on " + ln.Addr().String()
	}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		r.Sockets = append(r.Sockets, sockets(f)...)
	}
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRetryMaxAttempts(1))
	if err != nil {
		return r, err
	}
	id, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		r.Identity = "error: " + err.Error()
	} else {
		r.Identity = aws.ToString(id.Arn)
	}
	return r, nil
}

// gateway is the default route's gateway, from /proc/net/route.
func gateway() string {
	b, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 2 && f[1] == "00000000" {
			g, err := hex.DecodeString(f[2])
			if err == nil && len(g) == 4 {
				return net.IPv4(g[3], g[2], g[1], g[0]).String()
			}
		}
	}
	return ""
}

// sockets lists the local address of every socket in a /proc/net table.
func sockets(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return []string{path + ": " + err.Error()}
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		out = append(out, decode(fields[1]))
	}
	return out
}

// decode turns /proc/net's "0100007F:2329" into "127.0.0.1:9001".
func decode(s string) string {
	ipHex, portHex, _ := strings.Cut(s, ":")
	b, err := hex.DecodeString(ipHex)
	port, _ := strconv.ParseUint(portHex, 16, 16)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return s
	}
	// Each 32-bit word is in host (little-endian) order.
	for i := 0; i+4 <= len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	return net.JoinHostPort(net.IP(b).String(), fmt.Sprint(port))
}

func main() { lambda.Start(handle) }
