package federation

import (
	"crypto/ed25519"
	"runtime"
	"sync"
)

// minParallelVerify is the page size from which signatures are checked on
// several cores: below it the goroutines cost more than they save.
const minParallelVerify = 64

// verifySignatures checks every event's signature against pub, in
// parallel across GOMAXPROCS for a large page. Ed25519 verification is
// most of a replica's replay cost and needs no chain context, so only the
// cheap link checks stay sequential. errs[i] is ev i's signature error.
func verifySignatures(pub ed25519.PublicKey, evs []Event) []error {
	errs := make([]error, len(evs))
	workers := min(runtime.GOMAXPROCS(0), len(evs)/minParallelVerify)
	if workers <= 1 {
		for i := range evs {
			errs[i] = VerifySignature(pub, &evs[i])
		}
		return errs
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(evs); i += workers {
				errs[i] = VerifySignature(pub, &evs[i])
			}
		}()
	}
	wg.Wait()
	return errs
}
