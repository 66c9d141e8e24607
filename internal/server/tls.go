package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
)

// certificate holds the listeners' certificate and reloads it on SIGHUP,
// so that a renewed certificate takes effect without dropping a request:
// connections already open keep theirs, new ones get the new one.
type certificate struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
	log               *slog.Logger
}

func loadCertificate(certFile, keyFile string, log *slog.Logger) (*certificate, error) {
	c := &certificate{certFile: certFile, keyFile: keyFile, log: log}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *certificate) load() error {
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("load TLS certificate: %w", err)
	}
	c.cur.Store(&pair)
	return nil
}

// config is the TLS configuration of both listeners.
func (c *certificate) config() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.cur.Load(), nil },
	}
}

// reloadOnHangup reloads the certificate at each SIGHUP until ctx ends;
// a certificate that fails to load is reported and the old one kept.
func (c *certificate) reloadOnHangup(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := c.load(); err != nil {
				c.log.Error("SIGHUP: keeping the old certificate", "err", err)
				continue
			}
			c.log.Info("SIGHUP: TLS certificate reloaded", "cert", c.certFile)
		}
	}
}
