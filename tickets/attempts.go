package tickets

import (
	"context"
	"fmt"
	"time"
)

// AttemptStats are the attempts recorded under one key within a window.
type AttemptStats struct {
	Count int
	Since time.Duration // since the newest of them, by the database's clock
}

// WebAttemptStats returns, for each key with attempts newer than window,
// how many there are and how long ago the newest was made.
func (s *Store) WebAttemptStats(ctx context.Context, window time.Duration, keys ...string) (map[string]AttemptStats, error) {
	rows, err := s.db.Query(ctx, `SELECT key, count(*), EXTRACT(EPOCH FROM now() - max(created_at))::float8 FROM web_attempts
		WHERE key = ANY($1) AND created_at > now() - make_interval(secs => $2) GROUP BY key`, keys, window.Seconds())
	if err != nil {
		return nil, fmt.Errorf("count attempts: %w", err)
	}
	defer rows.Close()
	out := make(map[string]AttemptStats, len(keys))
	for rows.Next() {
		var k string
		var st AttemptStats
		var secs float64
		if err := rows.Scan(&k, &st.Count, &secs); err != nil {
			return nil, fmt.Errorf("count attempts: %w", err)
		}
		st.Since = time.Duration(secs * float64(time.Second))
		out[k] = st
	}
	return out, rows.Err()
}

// ForgetWebAttempts deletes the attempts recorded under key.
func (s *Store) ForgetWebAttempts(ctx context.Context, key string) error {
	if _, err := s.db.Exec(ctx, `DELETE FROM web_attempts WHERE key = $1`, key); err != nil {
		return fmt.Errorf("forget attempts: %w", err)
	}
	return nil
}
