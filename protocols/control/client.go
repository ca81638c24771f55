package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
)

// Client calls operations of the daemon listening on Socket.
type Client struct {
	Socket string
}

func (c *Client) http() *http.Client {
	var d net.Dialer
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", c.Socket)
		},
		DisableKeepAlives: true,
	}}
}

// Call runs op with req (nil: none) and decodes the answer into resp
// (nil: ignored). It returns ErrNoDaemon when no daemon listens, an
// *Error when the daemon refused or failed.
func (c *Client) Call(ctx context.Context, op string, req, resp any) error {
	var body []byte
	if req != nil {
		var err error
		if body, err = json.Marshal(req); err != nil {
			return fmt.Errorf("control %s: %w", op, err)
		}
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://vmaild/v"+strconv.Itoa(Version)+"/"+op, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("control %s: %w", op, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	res, err := c.http().Do(hr)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w (%s)", ErrNoDaemon, c.Socket)
		}
		if errors.Is(err, syscall.EACCES) {
			return fmt.Errorf("control socket %s: permission denied: run this as root or as the user vmaild runs as", c.Socket)
		}
		return fmt.Errorf("control %s: %w", op, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return fmt.Errorf("control %s: read answer: %w", op, err)
	}
	if res.StatusCode != http.StatusOK {
		e := &Error{}
		if json.Unmarshal(data, e) != nil || e.Message == "" {
			e = &Error{Code: CodeInternal, Message: fmt.Sprintf("control %s: %s", op, res.Status)}
		}
		return e
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(data, resp); err != nil {
		return fmt.Errorf("control %s: decode answer: %w", op, err)
	}
	return nil
}
