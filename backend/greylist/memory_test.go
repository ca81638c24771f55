package greylist_test

import (
	"testing"

	"github.com/vmaild/vmaild/backend/greylist"
	"github.com/vmaild/vmaild/backend/greylist/greylisttest"
)

func TestMemoryRules(t *testing.T) { greylisttest.Run(t, &greylist.Memory{}) }
