package console

import (
	"embed"
	"io/fs"
	"net/http"
)

// web is the page: plain HTML, CSS and JavaScript, no build step and
// nothing fetched from the network.
//
//go:embed web
var web embed.FS

func webHandler() http.Handler {
	sub, err := fs.Sub(web, "web")
	if err != nil {
		panic("BUG: console web assets: " + err.Error())
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		files.ServeHTTP(w, r)
	})
}
