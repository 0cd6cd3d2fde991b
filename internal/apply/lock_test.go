package apply

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/symroute/symroute/internal/golden"
)

func TestLockExcludesAndNamesTheHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run/symroute.lock")
	release, err := Lock(context.Background(), path, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); strings.TrimSpace(string(data)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("lock file holds %q, want our pid", data)
	}
	var told string
	_, err = Lock(context.Background(), path, 300*time.Millisecond, func(holder string) { told = holder })
	if err == nil || !strings.Contains(err.Error(), "still holds") || !strings.Contains(told, "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second lock: err %v, told %q", err, told)
	}
	// A waiter gets the lock once the holder lets go.
	go func() { time.Sleep(200 * time.Millisecond); release() }()
	release2, err := Lock(context.Background(), path, 5*time.Second, nil)
	if err != nil {
		t.Fatalf("waiting for the lock: %v", err)
	}
	release2()
}
