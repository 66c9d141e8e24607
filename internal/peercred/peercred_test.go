package peercred

import (
	"net"
	"os"
	"testing"
)

// acceptedConn is the server side of a fresh loopback connection.
func acceptedConn(t *testing.T) net.Conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestUIDOfLoopbackPeer(t *testing.T) {
	s := acceptedConn(t)
	uid, err := UID(s)
	if err != nil || uid != os.Getuid() {
		t.Fatalf("UID = %d, %v; want %d", uid, err, os.Getuid())
	}
}

func TestFind(t *testing.T) {
	table := []byte(`  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2328 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:9C40 0100007F:2328 01 00000000:00000000 00:00000000 00000000 200007        0 2 1 0 20 4 30 10 -1
`)
	client := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 0x9C40}
	server := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 0x2328}
	if uid, err := find(table, client, server); err != nil || uid != 200007 {
		t.Errorf("find = %d, %v", uid, err)
	}
	other := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
	if _, err := find(table, other, server); err != ErrNotFound {
		t.Errorf("unknown socket: %v", err)
	}
}

func TestDiagMatchesProc(t *testing.T) {
	s := acceptedConn(t)
	uid, err := diagUID(s.RemoteAddr().(*net.TCPAddr), s.LocalAddr().(*net.TCPAddr))
	if err != nil || uid != os.Getuid() {
		t.Fatalf("diagUID = %d, %v", uid, err)
	}
	other := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
	if _, err := diagUID(other, s.LocalAddr().(*net.TCPAddr)); err == nil {
		t.Error("found a socket that does not exist")
	}
}
