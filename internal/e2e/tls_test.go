package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
)

// writeCert writes a self-signed certificate for ip and returns its pool.
func writeCert(t *testing.T, dir, name string, ip net.IP, serial int64) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{ip},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func ip(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestTLSBeyondLoopback: in a network namespace the test makes, a server
// on a non-loopback address serves both listeners over TLS (plaintext
// refused), reloads its certificate on SIGHUP, and a server asked to
// serve plain HTTP there refuses to start.
func TestTLSBeyondLoopback(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("network namespaces need root; CI runs the tests as root")
	}
	ns := fmt.Sprintf("stratus-tls-%d", os.Getpid())
	host, peer := fmt.Sprintf("st%dh", os.Getpid()%100000), fmt.Sprintf("st%dp", os.Getpid()%100000)
	ip(t, "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	ip(t, "link", "add", host, "type", "veth", "peer", "name", peer)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", host).Run() })
	ip(t, "link", "set", peer, "netns", ns)
	sub := 10 + os.Getpid()%200
	hostIP, nsIP := fmt.Sprintf("10.%d.77.2", sub), fmt.Sprintf("10.%d.77.1", sub)
	ip(t, "addr", "add", hostIP+"/24", "dev", host)
	ip(t, "link", "set", host, "up")
	ip(t, "-n", ns, "addr", "add", nsIP+"/24", "dev", peer)
	ip(t, "-n", ns, "link", "set", peer, "up")
	ip(t, "-n", ns, "link", "set", "lo", "up")

	dir := t.TempDir()
	certFile, keyFile, pool := writeCert(t, dir, "one", net.ParseIP(nsIP), 1)
	// Refused: plain HTTP on a non-loopback address.
	out, err := exec.Command("ip", "netns", "exec", ns, stratusBin, "server", "--listen", nsIP+":9000", "--http-listen", nsIP+":8080",
		"--data-dir", filepath.Join(dir, "plain")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not a loopback address") {
		t.Fatalf("plain HTTP beyond loopback was not refused: %v\n%s", err, out)
	}
	data := filepath.Join(dir, "data")
	cmd := exec.Command("ip", "netns", "exec", ns, stratusBin, "server", "--listen", nsIP+":9000", "--http-listen", nsIP+":8080",
		"--data-dir", data, "--tls-cert", certFile, "--tls-key", keyFile)
	var logs lockedBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
	endpoint := "https://" + nsIP + ":9000"
	trusting := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 5 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := trusting.Get(endpoint + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TLS health: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	s := &server{t: t, dataDir: data, addr: nsIP + ":9000", Endpoint: endpoint}
	s.loadCredentials()
	lc := lambda.New(lambda.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint), Credentials: s.creds(), HTTPClient: trusting})
	if _, err := lc.ListFunctions(context.Background(), &lambda.ListFunctionsInput{}); err != nil {
		t.Fatalf("signed request over TLS: %v", err)
	}
	for _, u := range []string{"http://" + nsIP + ":9000/healthz", "http://" + nsIP + ":8080/"} {
		resp, err := plainClient.Get(u)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode < 400 {
				t.Errorf("plaintext to %s answered %d %s", u, resp.StatusCode, b)
			}
		}
	}
	old := &tls.Config{MinVersion: tls.VersionTLS11, MaxVersion: tls.VersionTLS11, InsecureSkipVerify: true} //nolint:gosec // the point is to be refused
	if c, err := tls.Dial("tcp", nsIP+":9000", old); err == nil {
		c.Close()
		t.Error("TLS 1.1 was accepted")
	}
	// SIGHUP: the new certificate serves new connections.
	_, _, newPool := writeCert(t, dir, "one", net.ParseIP(nsIP), 2)
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	fresh := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: newPool}}, Timeout: 5 * time.Second}
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := fresh.Get(endpoint + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reloaded certificate is not served: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if cmd.ProcessState != nil {
		t.Fatal("the server exited on SIGHUP")
	}
}
