package tlscheck

import (
	"bufio"
	"errors"
)

func (r *report) html(w *bufio.Writer) error { return errors.New("-o html is not built yet") }
