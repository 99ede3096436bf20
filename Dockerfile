# syntax=docker/dockerfile:1
# A static ticketd binary on a minimal, non-root image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ticketd ./cmd/ticketd

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ticketd /usr/local/bin/ticketd
USER nonroot:nonroot
# 8080: web, API, /healthz, /readyz, /metrics, /api/inngest. 2525: SMTP.
EXPOSE 8080 2525
ENTRYPOINT ["/usr/local/bin/ticketd"]
CMD ["serve"]
