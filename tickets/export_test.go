package tickets

import (
	"context"
	"fmt"
	"io"
)

// ExplainSimilar writes the plan of the similar-ticket search, run under
// EXPLAIN ANALYZE with the bounds the search sets.
func ExplainSimilar(ctx context.Context, s *Store, q SimilarQuery, w io.Writer) error {
	query, args := similarStatement(q)
	return s.bounded(ctx, func(db DBTX) error {
		rows, err := db.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "+query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				return err
			}
			fmt.Fprintln(w, line)
		}
		return rows.Err()
	})
}
