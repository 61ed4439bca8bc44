package perfevent

import (
	"encoding/binary"
	"errors"
	"io/fs"

	"golang.org/x/sys/unix"

	"github.com/unwindd/unwindd/host/perfdata"
	"github.com/unwindd/unwindd/host/procfs"
)

// synthesizer writes kernel-format records for what existed before the
// events did, as perf record synthesizes them from /proc: a COMM record per
// thread and an MMAP2 record per executable mapping. Each carries the
// sample_id trailer of the tracking event (its id, time t0, cpu -1), so that
// a Decoder treats it as the kernel's own.
type synthesizer struct {
	st   perfdata.SampleType
	id   uint64
	time uint64
	buf  []byte
}

// record appends a record of type typ whose body is body, padded to 8 bytes,
// followed by the trailer of (pid, tid), and returns it.
func (s *synthesizer) record(typ perfdata.RecordType, misc uint16, pid, tid uint32, body []byte) []byte {
	n := 8 + (len(body)+7)&^7
	for _, b := range []perfdata.SampleType{perfdata.SampleTID, perfdata.SampleTime, perfdata.SampleID,
		perfdata.SampleStreamID, perfdata.SampleCPU, perfdata.SampleIdentifier} {
		if s.st&b != 0 {
			n += 8
		}
	}
	r := make([]byte, n)
	le := binary.LittleEndian
	le.PutUint32(r, uint32(typ))
	le.PutUint16(r[4:], misc)
	le.PutUint16(r[6:], uint16(n))
	p := 8 + copy(r[8:], body)
	p = (p + 7) &^ 7
	if s.st&perfdata.SampleTID != 0 {
		le.PutUint32(r[p:], pid)
		le.PutUint32(r[p+4:], tid)
		p += 8
	}
	if s.st&perfdata.SampleTime != 0 {
		le.PutUint64(r[p:], s.time)
		p += 8
	}
	if s.st&perfdata.SampleID != 0 {
		le.PutUint64(r[p:], s.id)
		p += 8
	}
	if s.st&perfdata.SampleStreamID != 0 {
		le.PutUint64(r[p:], s.id)
		p += 8
	}
	if s.st&perfdata.SampleCPU != 0 {
		le.PutUint32(r[p:], ^uint32(0))
		p += 8
	}
	if s.st&perfdata.SampleIdentifier != 0 {
		le.PutUint64(r[p:], s.id)
	}
	return r
}

// comm returns the COMM record of thread tid of process pid.
func (s *synthesizer) comm(pid, tid int, name string) []byte {
	body := make([]byte, 8, 8+len(name)+1)
	binary.LittleEndian.PutUint32(body, uint32(pid))
	binary.LittleEndian.PutUint32(body[4:], uint32(tid))
	body = append(append(body, name...), 0)
	return s.record(perfdata.RecordComm, 0, uint32(pid), uint32(tid), body)
}

// mmap2 returns the MMAP2 record of mapping m of process pid, as the kernel
// writes it for a new mapping (device and inode, prot and flags; a deleted
// file's name with " (deleted)").
func (s *synthesizer) mmap2(pid int, m *procfs.Mapping) []byte {
	name := m.Path
	switch {
	case name == "":
		name = "//anon"
	case m.Deleted:
		name += " (deleted)"
	}
	var prot, flags uint32
	if m.Perms.Read {
		prot |= unix.PROT_READ
	}
	if m.Perms.Write {
		prot |= unix.PROT_WRITE
	}
	if m.Perms.Exec {
		prot |= unix.PROT_EXEC
	}
	if m.Perms.Shared {
		flags |= unix.MAP_SHARED
	} else {
		flags |= unix.MAP_PRIVATE
	}
	body := make([]byte, 64, 64+len(name)+1)
	le := binary.LittleEndian
	le.PutUint32(body[0:], uint32(pid))
	le.PutUint32(body[4:], uint32(pid))
	le.PutUint64(body[8:], m.Start)
	le.PutUint64(body[16:], m.End-m.Start)
	le.PutUint64(body[24:], m.Offset)
	le.PutUint32(body[32:], m.Major)
	le.PutUint32(body[36:], m.Minor)
	le.PutUint64(body[40:], m.Inode)
	le.PutUint64(body[48:], 0) // ino_generation
	le.PutUint32(body[56:], prot)
	le.PutUint32(body[60:], flags)
	body = append(append(body, name...), 0)
	return s.record(perfdata.RecordMmap2, perfdata.MiscUser, uint32(pid), uint32(pid), body)
}

// synthesize returns the COMM records of the threads tids of process pid
// and the MMAP2 records of its executable mappings. A thread that has
// exited meanwhile is left out; a process that has, is not an error (its
// EXIT record follows).
func (s *synthesizer) synthesize(pid int, tids []int) ([][]byte, error) {
	var recs [][]byte
	for _, tid := range tids {
		name, err := procfs.Comm(pid, tid)
		if err != nil {
			continue
		}
		recs = append(recs, s.comm(pid, tid, name))
	}
	maps, err := procfs.ReadMaps(pid)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return recs, nil
		}
		return recs, err
	}
	for i := range maps {
		if maps[i].Perms.Exec {
			recs = append(recs, s.mmap2(pid, &maps[i]))
		}
	}
	return recs, nil
}
