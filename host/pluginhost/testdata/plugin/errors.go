package main

import (
	"errors"

	"github.com/unwindd/unwindd/sdk"
)

func isUnknownTask(err error) bool { return errors.Is(err, sdk.ErrUnknownTask) }
