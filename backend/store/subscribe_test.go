package store

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestSpecialFolderSubscriptions follows the subscriptions file through the
// ways a special-use folder comes to exist, then through a restart (a new
// Store, as after a daemon restart) and a full listing: a folder is
// subscribed when it is created and never again, INBOX always counts as
// subscribed, and a Dovecot file is only ever appended to.
func TestSpecialFolderSubscriptions(t *testing.T) {
	const addr = "a@example.org"
	dovecotV2 := "V\t2\n\nINBOX\nSent\nArchive\t2024\nEntw&APw-rfe\n"
	dovecotV1 := "INBOX\nSent\nDrafts\nTrash\nJunk\nArchive.2024\n"
	all := []string{"Drafts", "Sent", "Trash", "Junk"}
	dotted := []string{".Drafts", ".Sent", ".Trash", ".Junk"}
	cases := []struct {
		name string
		// fresh leaves the account's Maildir to OpenMailbox (a new
		// account's first login); otherwise it exists with dirs.
		fresh bool
		dirs  []string
		// subs is the subscriptions file before, "" for none.
		subs string
		do   func(ctx context.Context, s *Store, mb *Mailbox) error
		// file is the subscriptions file right after do.
		file string
		// listed are the subscribed names ListFolders gives after a
		// restart, which also creates every missing special folder.
		listed []string
	}{
		{
			name:   "new account, first login",
			fresh:  true,
			file:   "V\t2\n\nDrafts\nSent\nTrash\nJunk\n",
			listed: []string{"INBOX", "Drafts", "Junk", "Sent", "Trash"},
		},
		{
			name: "STATUS before any LIST",
			do: func(ctx context.Context, _ *Store, mb *Mailbox) error {
				_, err := mb.Status(ctx, "Drafts")
				return err
			},
			file:   "V\t2\n\nDrafts\n",
			listed: []string{"INBOX", "Drafts", "Junk", "Sent", "Trash"},
		},
		{
			name: "SELECT",
			do: func(ctx context.Context, _ *Store, mb *Mailbox) error {
				f, err := mb.Select(ctx, "Sent", true)
				if err == nil {
					f.Close()
				}
				return err
			},
			file:   "V\t2\n\nSent\n",
			listed: []string{"INBOX", "Drafts", "Junk", "Sent", "Trash"},
		},
		{
			name: "APPEND",
			do: func(ctx context.Context, _ *Store, mb *Mailbox) error {
				_, err := mb.Append(ctx, "Drafts", strings.NewReader(string(msg(1))), AppendOptions{})
				return err
			},
			file:   "V\t2\n\nDrafts\n",
			listed: []string{"INBOX", "Drafts", "Junk", "Sent", "Trash"},
		},
		{
			name: "delivery into Junk",
			do: func(ctx context.Context, s *Store, _ *Mailbox) error {
				_, err := s.Deliver(ctx, Recipient{Address: addr, Folder: "Junk"}, strings.NewReader(string(msg(1))))
				return err
			},
			file:   "V\t2\n\nJunk\n",
			listed: []string{"INBOX", "Drafts", "Junk", "Sent", "Trash"},
		},
		{
			name: "unsubscribed after creation stays unsubscribed",
			do: func(ctx context.Context, _ *Store, mb *Mailbox) error {
				if _, err := mb.Status(ctx, "Drafts"); err != nil {
					return err
				}
				if err := mb.Unsubscribe(ctx, "Drafts"); err != nil {
					return err
				}
				_, err := mb.Status(ctx, "Drafts")
				return err
			},
			file:   "V\t2\n\n",
			listed: []string{"INBOX", "Junk", "Sent", "Trash"},
		},
		{
			name:   "existing special folders are not subscribed again",
			dirs:   dotted,
			subs:   "V\t2\n\nSent\n",
			file:   "V\t2\n\nSent\n",
			listed: []string{"INBOX", "Sent"},
		},
		{
			name: "Dovecot file is appended to byte for byte",
			dirs: []string{".Sent", ".Trash", ".Archive.2024", ".Entw&APw-rfe"},
			subs: dovecotV2,
			do: func(ctx context.Context, _ *Store, mb *Mailbox) error {
				_, err := mb.Status(ctx, "Junk")
				return err
			},
			file:   dovecotV2 + "Junk\n",
			listed: []string{"INBOX", "Archive/2024", "Drafts", "Entwürfe", "Junk", "Sent"},
		},
		{
			name: "Dovecot version 1 file with nothing to add is left alone",
			dirs: append([]string{".Archive.2024"}, dotted...),
			subs: dovecotV1,
			do: func(ctx context.Context, _ *Store, mb *Mailbox) error {
				if _, err := mb.ListFolders(ctx); err != nil {
					return err
				}
				return mb.Subscribe(ctx, "Sent")
			},
			file:   dovecotV1,
			listed: []string{"INBOX", "Archive/2024", "Drafts", "Junk", "Sent", "Trash"},
		},
		{
			name: "INBOX unsubscribed in the file is still subscribed",
			dirs: dotted,
			subs: "V\t2\n\nINBOX\nTrash\n",
			do: func(ctx context.Context, _ *Store, mb *Mailbox) error {
				return mb.Unsubscribe(ctx, "INBOX")
			},
			file:   "V\t2\n\nTrash\n",
			listed: []string{"INBOX", "Trash"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s := newTestStore(t)
			root, err := s.MaildirPath(addr, "")
			if err != nil {
				t.Fatal(err)
			}
			subsFile := filepath.Join(root, "subscriptions")
			if !tc.fresh {
				for _, d := range append([]string{""}, tc.dirs...) {
					if err := makeMaildir(filepath.Join(root, d)); err != nil {
						t.Fatal(err)
					}
				}
			}
			var old time.Time
			if tc.subs != "" {
				writeFile(t, subsFile, []byte(tc.subs))
				old = time.Unix(1700001000, 0)
				if err := os.Chtimes(subsFile, old, old); err != nil {
					t.Fatal(err)
				}
			}
			mb := mustOpen(t, s, addr)
			if tc.do != nil {
				if err := tc.do(ctx, s, mb); err != nil {
					t.Fatal(err)
				}
			}
			data, err := os.ReadFile(subsFile)
			if err != nil {
				t.Fatal(err)
			}
			if string(data) != tc.file {
				t.Errorf("subscriptions file %q, want %q", data, tc.file)
			}
			if tc.subs == tc.file {
				if fi, err := os.Stat(subsFile); err != nil || !fi.ModTime().Equal(old) {
					t.Errorf("unchanged subscriptions file was rewritten")
				}
			}

			s2 := &Store{Root: s.Root, Hostname: s.Hostname}
			mb2 := mustOpen(t, s2, addr)
			for _, name := range all {
				if _, err := mb2.Status(ctx, name); err != nil {
					t.Fatal(err)
				}
			}
			list, err := mb2.ListFolders(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var listed []string
			for _, fi := range list {
				if fi.Subscribed {
					listed = append(listed, fi.Name)
				}
			}
			if !reflect.DeepEqual(listed, tc.listed) {
				t.Errorf("subscribed after restart %v, want %v", listed, tc.listed)
			}
			subs, err := mb2.Subscriptions(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(subs) == 0 || subs[0] != Inbox {
				t.Errorf("Subscriptions %v: INBOX is not first", subs)
			}
		})
	}
}
