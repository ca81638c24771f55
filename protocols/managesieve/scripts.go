package managesieve

import (
	"context"
	"errors"
	"strconv"
)

// scripts.go: the commands of the authenticated state (RFC 5804 sections
// 2.5 to 2.12).

func (c *conn) scriptCommand(name string, args []arg) {
	ctx := c.ctx
	switch name {
	case "LISTSCRIPTS":
		if _, ok := c.strs(args, 0, "LISTSCRIPTS"); !ok {
			return
		}
		list, err := c.scripts.List(ctx)
		if err != nil {
			c.fail("LISTSCRIPTS", err)
			return
		}
		for _, s := range list {
			if s.Active {
				c.line(quote(s.Name) + " ACTIVE")
			} else {
				c.line(quote(s.Name))
			}
		}
		c.ok("Listscripts completed")
	case "GETSCRIPT":
		a, ok := c.strs(args, 1, `GETSCRIPT "name"`)
		if !ok {
			return
		}
		src, err := c.scripts.Get(ctx, a[0])
		if err != nil {
			c.fail("GETSCRIPT", err)
			return
		}
		// Always a literal: a script has line breaks.
		c.line("{" + strconv.Itoa(len(src)) + "}")
		c.bw.Write(src)
		c.line("")
		c.ok("Getscript completed")
	case "PUTSCRIPT":
		a, ok := c.strs(args, 2, `PUTSCRIPT "name" {size+}script`)
		if !ok {
			return
		}
		if err := c.scripts.Put(ctx, a[0], []byte(a[1])); err != nil {
			c.fail("PUTSCRIPT", err)
			return
		}
		c.log.Info("managesieve putscript", "script", a[0], "size", len(a[1]))
		c.ok("Putscript completed")
	case "CHECKSCRIPT":
		a, ok := c.strs(args, 1, `CHECKSCRIPT {size+}script`)
		if !ok {
			return
		}
		if err := c.scripts.Check(ctx, []byte(a[0])); err != nil {
			c.fail("CHECKSCRIPT", err)
			return
		}
		c.ok("Script is valid")
	case "HAVESPACE":
		if len(args) != 2 || args[0].kind != argString || args[1].kind != argNumber {
			c.bad("", `usage: HAVESPACE "name" size`)
			return
		}
		if err := c.scripts.HaveSpace(ctx, args[0].s, args[1].n); err != nil {
			c.fail("HAVESPACE", err)
			return
		}
		c.ok("Putscript would succeed")
	case "SETACTIVE":
		a, ok := c.strs(args, 1, `SETACTIVE "name"`)
		if !ok {
			return
		}
		if err := c.scripts.SetActive(ctx, a[0]); err != nil {
			c.fail("SETACTIVE", err)
			return
		}
		c.log.Info("managesieve setactive", "script", a[0])
		c.ok("Setactive completed")
	case "DELETESCRIPT":
		a, ok := c.strs(args, 1, `DELETESCRIPT "name"`)
		if !ok {
			return
		}
		if err := c.scripts.Delete(ctx, a[0]); err != nil {
			c.fail("DELETESCRIPT", err)
			return
		}
		c.log.Info("managesieve deletescript", "script", a[0])
		c.ok("Deletescript completed")
	case "RENAMESCRIPT":
		a, ok := c.strs(args, 2, `RENAMESCRIPT "old" "new"`)
		if !ok {
			return
		}
		if err := c.scripts.Rename(ctx, a[0], a[1]); err != nil {
			c.fail("RENAMESCRIPT", err)
			return
		}
		c.log.Info("managesieve renamescript", "from", a[0], "to", a[1])
		c.ok("Renamescript completed")
	default:
		c.bad("", "unknown command")
	}
}

// fail answers a Scripts error with its response code.
func (c *conn) fail(cmd string, err error) {
	var se *ScriptError
	var qe *QuotaError
	switch {
	case errors.Is(err, ErrNonExistent):
		c.no("NONEXISTENT", ErrNonExistent.Error())
	case errors.Is(err, ErrAlreadyExists):
		c.no("ALREADYEXISTS", ErrAlreadyExists.Error())
	case errors.Is(err, ErrActive):
		c.no("ACTIVE", ErrActive.Error())
	case errors.As(err, &qe):
		c.no(qe.Limit.code(), qe.Msg)
	case errors.As(err, &se):
		c.no("", se.Msg)
	case errors.Is(err, context.Canceled):
		c.quit = true
	default:
		c.log.Error("managesieve "+cmd, "err", err)
		c.no("TRYLATER", "internal error, try again later")
	}
}
