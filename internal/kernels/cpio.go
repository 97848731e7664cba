package kernels

import (
	"fmt"
	"io"
	"path"
	"strings"
)

// cpioWriter writes a cpio archive in the "newc" format the kernel
// unpacks as an initramfs. It only knows what an initramfs needs:
// directories, regular files and symlinks.
type cpioWriter struct {
	w     io.Writer
	ino   uint32
	dirs  map[string]bool
	err   error
	ended bool
}

func newCPIOWriter(w io.Writer) *cpioWriter {
	return &cpioWriter{w: w, ino: 1, dirs: map[string]bool{".": true, "": true}}
}

// Dir adds the directory name and every missing parent.
func (c *cpioWriter) Dir(name string, mode uint32) error {
	name = cleanArchivePath(name)
	if c.dirs[name] {
		return nil
	}
	if err := c.Dir(path.Dir(name), 0o755); err != nil {
		return err
	}
	c.dirs[name] = true
	return c.entry(name, 0o040000|mode&0o7777, nil)
}

// File adds a regular file (and its parent directories).
func (c *cpioWriter) File(name string, mode uint32, data []byte) error {
	name = cleanArchivePath(name)
	if err := c.Dir(path.Dir(name), 0o755); err != nil {
		return err
	}
	return c.entry(name, 0o100000|mode&0o7777, data)
}

// Symlink adds name pointing at target.
func (c *cpioWriter) Symlink(name, target string) error {
	name = cleanArchivePath(name)
	if err := c.Dir(path.Dir(name), 0o755); err != nil {
		return err
	}
	return c.entry(name, 0o120777, []byte(target))
}

// Close writes the trailer. It does not close the underlying writer.
func (c *cpioWriter) Close() error {
	if c.ended {
		return c.err
	}
	c.ended = true
	if err := c.entry("TRAILER!!!", 0, nil); err != nil {
		return err
	}
	return nil
}

func cleanArchivePath(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

func (c *cpioWriter) entry(name string, mode uint32, data []byte) error {
	if c.err != nil {
		return c.err
	}
	if c.ended && name != "TRAILER!!!" {
		return fmt.Errorf("cpio: write %s after Close", name)
	}
	ino := c.ino
	c.ino++
	nlink := 1
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	// newc header: magic then 13 eight-digit hex fields.
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	buf := make([]byte, 0, len(hdr)+len(name)+8)
	buf = append(buf, hdr...)
	buf = append(buf, name...)
	buf = append(buf, 0)
	buf = append(buf, make([]byte, pad4(len(buf)))...)
	if _, err := c.w.Write(buf); err != nil {
		c.err = fmt.Errorf("cpio: write %s: %w", name, err)
		return c.err
	}
	if len(data) > 0 {
		if _, err := c.w.Write(data); err != nil {
			c.err = fmt.Errorf("cpio: write %s: %w", name, err)
			return c.err
		}
		if _, err := c.w.Write(make([]byte, pad4(len(data)))); err != nil {
			c.err = fmt.Errorf("cpio: write %s: %w", name, err)
			return c.err
		}
	}
	return nil
}

func pad4(n int) int { return (4 - n%4) % 4 }
