package perfdata_test

import (
	"fmt"
	"io"
	"log"

	"github.com/unwindd/unwindd/host/perfdata"
)

func ExampleOpen() {
	f, err := perfdata.Open("testdata/dwarf.perf.data")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	fmt.Println(f.Features.Arch, f.Attrs[0].Name, f.Attrs[0].SampleType)

	rr, rec := f.Records(), new(perfdata.Record)
	samples, stack, mmaps := 0, 0, 0
	for {
		err := rr.ReadInto(rec) // rec.Sample.Stack aliases f's memory until f.Close
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		switch rec.Type {
		case perfdata.RecordSample:
			samples++
			stack += len(rec.Sample.Stack)
		case perfdata.RecordMmap2:
			if rec.Mmap.Prot&4 != 0 { // PROT_EXEC
				mmaps++
			}
		}
	}
	fmt.Printf("%d samples, %d stack bytes, %d executable mappings\n", samples, stack, mmaps)
	// Output:
	// x86_64 cpu-clock IP|TID|TIME|ADDR|CALLCHAIN|PERIOD|REGS_USER|STACK_USER|DATA_SRC
	// 45 samples, 23040 stack bytes, 4 executable mappings
}
