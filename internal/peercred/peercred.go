// Package peercred finds which user owns the other end of a loopback TCP
// connection, so that a server can tell which sandboxed instance (each has
// a uid of its own) is calling.
package peercred

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
)

// ErrNotFound means no socket matched the connection.
var ErrNotFound = errors.New("peercred: socket not found")

// UID returns the uid owning the socket at the far end of a loopback TCP
// connection accepted by a server: the socket whose local address is the
// client's address and whose remote address is the server's.
func UID(conn net.Conn) (int, error) {
	client, ok1 := conn.RemoteAddr().(*net.TCPAddr)
	server, ok2 := conn.LocalAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		return -1, errors.New("peercred: not a TCP connection")
	}
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return -1, fmt.Errorf("peercred: %w", err)
	}
	return find(data, client, server)
}

// find scans the /proc/net/tcp table for the socket local=client, remote=server.
func find(table []byte, client, server *net.TCPAddr) (int, error) {
	local, err := encode(client)
	if err != nil {
		return -1, err
	}
	remote, err := encode(server)
	if err != nil {
		return -1, err
	}
	sc := bufio.NewScanner(bytes.NewReader(table))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	first := true
	for sc.Scan() {
		if first { // header
			first = false
			continue
		}
		f := bytes.Fields(sc.Bytes())
		// sl local rem st tx:rx tr:when retrnsmt uid ...
		if len(f) < 8 {
			continue
		}
		if string(f[1]) == local && string(f[2]) == remote {
			return strconv.Atoi(string(f[7]))
		}
	}
	return -1, ErrNotFound
}

// encode renders an IPv4 address as /proc/net/tcp does: the address as a
// 32-bit number in host (little-endian) byte order, then the port, in hex.
func encode(a *net.TCPAddr) (string, error) {
	ip4 := a.IP.To4()
	if ip4 == nil {
		return "", errors.New("peercred: only IPv4 is supported")
	}
	v := binary.LittleEndian.Uint32(ip4)
	return fmt.Sprintf("%08X:%04X", v, a.Port), nil
}
