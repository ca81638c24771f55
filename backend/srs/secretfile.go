package srs

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ReadSecretFile reads the secrets of a secret file, one a line, the first
// one signing, as postsrsd's secret file has them (so the same file serves
// both). Empty lines are skipped; nothing else is trimmed but the line end.
// When the file does not exist it is created, readable by its owner only,
// with one new random secret: the zero-configuration start.
func ReadSecretFile(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		data, err = createSecretFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("srs secret file: %w", err)
	}
	var secrets []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if line := bytes.TrimSuffix(sc.Bytes(), []byte("\r")); len(line) > 0 {
			secrets = append(secrets, string(line))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("srs secret file %s: %w", path, err)
	}
	if len(secrets) == 0 {
		return nil, fmt.Errorf("srs secret file %s: no secret in it", path)
	}
	return secrets, nil
}

// createSecretFile writes a new secret under a temporary name and links it
// into place, so the file is never seen half written and two processes
// starting at once cannot sign with different secrets: the second one to
// link reads the first one's file.
func createSecretFile(path string) ([]byte, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, err
	}
	line := []byte(base64.RawStdEncoding.EncodeToString(raw[:]) + "\n")
	f, err := os.CreateTemp(filepath.Dir(path), ".srs-secret-*")
	if err != nil {
		return nil, err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(line) // CreateTemp makes it 0600
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if err := os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		return os.ReadFile(path)
	} else if err != nil {
		return nil, err
	}
	return line, nil
}
