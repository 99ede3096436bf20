package triage

import (
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode"

	"ticketd/tickets"
)

// skillArea is what the rules know of a kind of support work: the names a
// desk may give the skill, and the words people use when they need it, in
// the languages the rules read (folded: lower case, no accents). Terms
// starting with "~" are weak: they count half, since they also pass by in
// tickets about other things.
type skillArea struct {
	names []string
	terms []string
}

// skillAreas are the areas ticketd knows. A vocabulary skill takes the
// terms of the area whose name it has; a skill of no area matches its own
// name and the terms admins give it on the skills page.
var skillAreas = []skillArea{
	{names: []string{"accounts", "account", "identity", "iam", "access", "access-management", "authentication", "login", "sso", "users"},
		terms: []string{`accounts?`, `log\s?ins?`, `logon`, `sign\s?ins?`, `sign\s+in`, `log\s+in(to)?`, `passwords?`, `passwort`, `kennwort`, `mot\s+de\s+passe`, `contrasena`, `senha`, `wachtwoord`,
			`locked(\s+out)?`, `unlock`, `gesperrt`, `entsperren`, `debloquer`, `desbloquear\w*`, `sbloccar\w*`, `desbloquear`, `deblokkeren`, `geblokkeerd`, `bloque`, `bloccato`, `bloqueada`, `bloquead[oa]`,
			`2fa`, `mfa`, `two-factor`, `second\s+factor`, `authenticator(\s+app)?`, `verification\s+codes?`, `zwei-faktor\w*`, `double\s+authentification`, `authentification\s+a\s+deux\s+facteurs`, `verificacion\s+en\s+dos\s+pasos`, `codigos\s+de\s+verificacion`, `due\s+fattori`, `dois\s+fatores`, `tweestapsverificatie`,
			`single\s+sign-on`, `sso`, `permissions?`, `access\s+rights`, `read-only\s+access`, `zugriff\w*`, `lesezugriff`, `droits`, `acceso`, `accesso`, `acesso`, `toegang`,
			`benutzer(konto)?`, `user\s+account`, `create\s+(her|his|their|an?)\s+account`, `~new\s+(starter|colleague|hire|employee)`, `(user|account|konto|benutzer|usuario|utente|compte|gebruiker)\s+(and|und|et|y|e|en)\s+(\w+\s+){0,2}(mailbox|postfach|e-?mail|adresse\s+e-?mail|correo|casella(\s+email)?|email|mailbox)`, `(mailbox|postfach|e-?mail|correo|casella(\s+email)?)\s+(and|und|et|y|e|en)\s+(\w+\s+){0,2}(user|account|konto|benutzer|usuario|utente|compte|gebruiker)`, `remove\s+(his|her)\s+accounts?`, `former\s+employee`, `shared\s+mailbox`, `shared\s+calendar`, `display\s+name`,
			`nouvelle?\s+(collaboratrice|collaborateur|arrivee)`, `creer\s+un\s+compte`, `compte`, `cuenta`, `conta`, `usuario`, `utente`, `gebruiker`, `crear(le)?\s+usuario`, `crearle\s+un\s+account`, `criar\s+o\s+usuario`, `account\s+en\s+mailbox`, `iniciar\s+sesion`, `accedere`, `fazer\s+login`, `inloggen`, `anmelden`, `se\s+connecter`, `legen\s+sie\s+\w+\s+einen\s+benutzer`,
			`license\s+expired`, `session\s+expired`, `~users?`, `~access`, `~credentials`, `~portal`}},
	{names: []string{"billing", "invoicing", "invoices", "payments", "payment", "finance", "subscriptions", "accounting"},
		terms: []string{`invoices?`, `rechnung\w*`, `factures?`, `facturas?`, `fatture?`, `faturas?`, `factuur`, `billing`, `billed`, `charged`, `charges?`, `abgebucht`, `abbuchung`, `preleve`, `prelevement`, `cobrad[oa]`, `cobro`, `cobranc\w*`, `cobraram`, `addebit\w*`, `afgeschreven`, `afschrijving`,
			`refunds?`, `refunded`, `erstatt\w*`, `rembours\w*`, `devuelvan`, `reembols\w*`, `rimbors\w*`, `estorn\w*`, `terugboeken`, `subscriptions?`, `subscribers`, `abonnement`, `abonnements?`, `suscripcion`, `abbonamento`, `assinatura`, `mensalidade`, `cuota`,
			`vat`, `mwst`, `tva`, `iva`, `btw`, `reverse\s+charge`, `prices?`, `pricing`, `discount`, `what\s+would\s+it\s+cost`, `~cost`, `preis`, `~kosten`, `prix`, `tarif`, `precio`, `costaria`, `prezzo`, `~costa`, `preco`, `~custa`, `prijs`, `~kost`,
			`annual\s+billing`, `renewal`, `segunda\s+via`, `duplicata`, `duplicate\s+charges?`, `payment\s+run`, `credit\s+card`, `billing\s+address`, `~payments?`, `~plan`, `~licen[cs]es?`}},
	{names: []string{"backup", "backups", "restore", "recovery", "disaster-recovery"},
		terms: []string{`backups?`, `back-ups?`, `sicherung`, `datensicherung`, `sauvegardes?`, `copias?\s+de\s+seguridad`, `copia\s+di\s+backup`, `restore\w*`, `restor\w*`, `wiederherstell\w*`, `aus\s+der\s+sicherung`, `restaur\w*`, `recuperar\w*`, `ripristin\w*`, `recuperare`, `terugzetten`, `snapshot`,
			`only\s+copy`, `another\s+copy`, `previous\s+version`, `version\s+(von|de|from|dell'|van)`, `versione\s+dell'altro\s+ieri`, `versao\s+de`, `catalog\s+corrupted`, `overwrote`, `uberschrieben`, `sobrescribi`, `sovrascritto`, `sobrescrevi`, `overschreven`, `~deleted`, `~external\s+(hard\s+)?drive`}},
	{names: []string{"database", "databases", "db", "dba", "postgres", "postgresql", "mysql", "mariadb", "sql", "sql-server", "mssql", "oracle"},
		terms: []string{`databases?`, `datenbank\w*`, `base\s+de\s+donnees`, `base\s+de\s+datos`, `banco(\s+de\s+dados)?`, `productiedatabase`, `postgres(ql)?`, `psql`, `pg_\w+`, `pgbouncer`, `mysql`, `mariadb`, `sql(\s+server)?`, `mssql`, `oracle`,
			`quer(y|ies)`, `abfragen`, `requetes`, `consultas`, `query`, `replica(tion)?`, `replicat\w*`, `binlogs?`, `deadlock`, `autovacuum`, `vacuum`, `bloat`, `delete\s+without`, `where\s+clause`, `too\s+many\s+(connections|clients)`, `customer\s+table`, `table\s+des\s+commandes`,
			`datensatze`, `kundendatensatze`, `registros`, `~record`, `klantrecords`, `enregistrements`, `~tables?`, `~records`, `~export`, `~reports?`, `~rapportages`, `~auswertungen`, `~relatorios`, `~informes`, `~rapports`, `~report`}},
	{names: []string{"email", "e-mail", "mail", "smtp", "exchange", "deliverability", "messaging"},
		terms: []string{`e-?mails?`, `mails?`, `mailbox(es)?`, `postfach`, `boite\s+mail`, `messagerie`, `correos?`, `casella`, `posta\s+elettronica`, `caixa\s+de\s+entrada`, `werkmail`, `webmail`, `outlook`, `exchange`, `smtp`, `imap`, `pop3`,
			`spam`, `junk`, `indesirables`, `bounce[sd]?`, `rebot\w*`, `relay`, `spf`, `dkim`, `dmarc`, `mx\s+records?`, `newsletters?`, `alias(es)?`, `out\s+of\s+office`, `abwesenheit\w*`, `afwezigheidsbericht`, `reponse\s+automatique`, `respuesta\s+automatica`, `risposta\s+automatica`, `automatic\s+reply`,
			`signature\s+automatique`, `assinatura\s+automatica`, `inbox`, `outbox`, `sent\s+folder`, `attachments?`, `piece\s+jointe`, `mailboxes`, `phishing(mails)?`, `~sent`, `~messages`}},
	{names: []string{"hardware", "devices", "desktop-support", "endpoint", "laptops"},
		terms: []string{`laptops?`, `notebook`, `portable`, `portatil`, `portatile`, `computer`, `rechner`, `ordinateur`, `ordenador`, `desktop`, `screen`, `monitors?`, `bildschirm`, `ecran`, `pantalla`, `schermo`, `tela`, `scherm`,
			`keyboard`, `tastatur`, `clavier`, `teclado`, `tastiera`, `toetsenbord`, `keys\\s+(came\\s+off|are\\s+missing|missing|stuck)`, `mouse`, `maus`, `souris`, `raton`, `battery`, `akku`, `batterie`, `bateria`, `batteria`, `accu`,
			`dock(ing\s+station)?`, `hard\s+drive`, `external\s+drive`, `disk\s+drive`, `ssd`, `bootable`, `won'?t\s+boot`, `black\s+screen`, `schwarzer\s+bildschirm`, `startet\s+nicht`, `tills?`, `kassen?`, `caisses?`, `cajas?(\s+registradoras?)?`, `casse`, `caixas`, `kassa'?s`,
			`charger`, `netzteil`, `fan`, `ventilator`, `lufter`, `clicking`, `wi-fi\s+card`, `placa\s+de\s+wi-fi`, `headset`, `webcam`, `cables?`, `power\s+cut`, `stromausfall`, `coupure\s+de\s+courant`, `corte\s+de\s+luz`, `blackout`, `queda\s+de\s+energia`, `stroomstoring`,
			`se\s+calienta`, `wird\s+erg\s+warm`, `lawaai`, `fissure`, `rota`, `cassé`, `~pcs?`, `~phones?`, `~devices?`, `~drive`}},
	{names: []string{"kubernetes", "k8s", "helm", "openshift", "containers", "devops"},
		terms: []string{`kubernetes`, `k8s`, `kubectl`, `pods?`, `helm(\s+chart)?`, `crashloopbackoff`, `imagepullbackoff`, `notready`, `evicted`, `ingress`, `namespaces?`, `worker\s+nodes?`, `nodes?`, `node-\d+`, `clusters?`, `cluster\s+de\s+recette`, `cluster\s+de\s+pruebas`, `clúster`, `deployments?`, `deploy`, `containers?`, `x509`,
			`~staging`, `~test-cluster`}},
	{names: []string{"linux", "ubuntu", "debian", "unix", "servers", "sysadmin"},
		terms: []string{`linux`, `ubuntu`, `debian`, `centos`, `rhel`, `red\s+hat`, `ssh`, `cron(\s+job)?`, `systemd`, `kernel`, `/var/log`, `bash`, `apache`, `nginx`, `disk\s+(is\s+)?(100%|full)`, `disk\s+space`, `log\s+files`, `webserver`, `web\s+server`, `~server`, `~disk`}},
	{names: []string{"mobile", "ios", "android", "apps", "mdm", "mobile-apps", "iphone"},
		terms: []string{`mobile`, `iphone`, `ipads?`, `android`, `ios`, `tablets?`, `smartphones?`, `handy`, `diensthandy`, `telephone\s+android`, `movil`, `celular`, `telefono\s+android`, `cellulare`, `telefoon`, `android-telefoon`, `iphone-app`, `app\s+store`, `play\s+store`,
			`push\s+notifications?`, `device\s+management`, `mdm`, `enrol\w*`, `the\s+app`, `die\s+app`, `l'app(li\w*)?`, `la\s+app`, `o\s+aplicativo`, `aplicativo`, `appli(cation)?`, `apps?`, `~phones?`, `~camera`}},
	{names: []string{"networking", "network", "networks", "vpn", "dns", "firewall", "connectivity"},
		terms: []string{`network`, `netzwerk`, `reseau`, `la\\s+red`, `de\\s+red`, `rete`, `rede`, `netwerk`, `internet`, `vpn`, `wi-?fi`, `wlan`, `router`, `firewall`, `switch`, `vlans?`, `dns`, `dhcp`, `ip\s+address`, `subnet`, `proxy`, `isp`, `latency`, `packet\s+loss`, `bandwidth`, `voip`, `nas`, `handshake`, `lan-kabel`,
			`~phones?`, `~telefone`, `~telephones`, `~telefoons`, `~connection`, `~verbindung`}},
	{names: []string{"printing", "printers", "print", "printer"},
		terms: []string{`scan(ner)?[\\s-]+to[\\s-]+e-?mail`, `print(er|ers|ing|s)?`, `drucker`, `druckt`, `drucken`, `imprim\w*`, `impresora`, `stampant\w*`, `stampa`, `impressora`, `imprimir`, `printen`, `printer`, `toner`, `paper\s+jam`, `jams?`, `papierstau`, `bourrage`, `atasco`, `inceppa\w*`, `papel\s+preso`, `papierstoring`,
			`copier`, `kopierer`, `photocopieur`, `scan(ner|-to-email)?`, `double-sided`, `recto\s+verso`, `doble\s+cara`, `fronte-retro`, `frente\s+e\s+verso`, `dubbelzijdig`, `schwarz-weiss`, `blanco\s+y\s+negro`, `print\s+queue`, `blank\s+pages`, `shipping\s+labels`}},
	{names: []string{"security", "infosec", "cybersecurity", "appsec", "soc"},
		terms: []string{`security`, `sicherheit`, `securite`, `seguridad`, `sicurezza`, `seguranca`, `beveiliging`, `phishing\w*`, `fake`, `gefalscht\w*`, `faux`, `falsa`, `falso`, `nep\w*`, `hacked`, `compromised`, `gehackt`, `malware`, `virus`, `antivirus`, `trojan\w*`, `cobalt\s*strike`,
			`ransom\w*`, `rancon`, `losegeld`, `rescate`, `riscatto`, `resgate`, `losgeld`, `encrypted`, `verschlusselt`, `chiffres`, `cifrados?`, `criptati`, `criptografados`, `versleuteld`, `bitcoin`, `\.(locked|lockd|crypt|crypted|enc)`,
			`suspicious`, `sospechos\w*`, `sospett\w*`, `suspeit\w*`, `verdacht\w*`, `suspect\w*`, `komische`, `strange\s+(email|mail)`, `leaked`, `leak`, `gelekt`, `vazad\w*`, `api[\s-]?key`, `access\s+key`, `secret`, `api-sleutel`, `cle\s+api`, `claves\s+de\s+acceso`, `chiave\s+api`, `chave\s+de\s+api`, `zugangsdaten`,
			`ssl`, `tls`, `certificates?`, `zertifikat`, `certificat`, `certificado`, `certificato`, `certificaat`, `brute\s+force`, `failed\s+(vpn\s+)?login\s+attempts`, `password\s+manager`, `gerenciador\s+de\s+senhas`, `passwort-richtlinien`, `policy`, `richtlinie`, `two-factor`, `deux\s+facteurs`, `tweestapsverificatie`, `due\s+fattori`,
			`unknown\s+admin`, `administrator\s+account`, `stolen`, `gestohlen`, `wire\s+transfer`, `redirect\w*`, `umgeleitet`, `casino`, `breach`, `sim`, `taken\s+over`, `wasn'?t\s+me`, `unknown\s+ip`, `inconnues`, `sconosciuti`, `weiterleitungsregeln`,
			`~password`, `~logins?`, `~anmeldungen`, `~connexions`, `~accessi`, `~antivirus`}},
	{names: []string{"web", "website", "websites", "frontend", "front-end", "webshop", "ecommerce", "e-commerce", "cms", "wordpress"},
		terms: []string{`website`, `web\s+site`, `webseite`, `homepage`, `startseite`, `site(\s+web)?`, `sitio`, `sito`, `web`, `webshop`, `web\s+shop`, `online\s*shop`, `onlineshop`, `boutique\s+en\s+ligne`, `tienda\s+(online|virtual)`, `negozio\s+online`, `loja\s+virtual`, `e-commerce`, `checkout`,
			`wordpress`, `shopware`, `shopify`, `woocommerce`, `magento`, `cms`, `plugins?`, `landing\s+page`, `page\s+de\s+destination`, `pagina\s+de\s+destino`, `pagina\s+de\s+destinazione`, `pagina\s+di\s+destinazione`, `browser`, `chrome`, `safari`, `firefox`, `edge`, `404`, `500`, `502`, `503`,
			`contact\s+form`, `kontaktformular`, `formulaire\s+de\s+contact`, `formulario\s+de\s+contacto`, `modulo\s+di\s+contatto`, `formulario\s+de\s+contato`, `contactformulier`, `captcha`, `php`, `cookie\s+banner`, `google\s+(analytics|fonts)`, `admin\s+(panel|area)`, `product\s+pages?`, `upload\w*`, `portal\s+upload`, `plateforme`, `procurement\s+portal`,
			`api`, `booking\s+system`, `about\s+us\s+page`, `login\s+page`, `hosting`, `~portal`, `~page`, `~site`, `~url`}},
	{names: []string{"windows", "windows-server", "active-directory", "microsoft-windows", "office", "microsoft"},
		terms: []string{`windows`, `win10`, `win11`, `blue\s+screen`, `bsod`, `bluescreen`, `blauer\s+bildschirm`, `ecran\s+bleu`, `pantalla\s+azul`, `schermata\s+blu`, `tela\s+azul`, `blauw\s+scherm`, `driver_irql\w*`, `excel`, `word`, `powerpoint`, `~teams`,
			`active\s+directory`, `domain\s+controller`, `vertrauensstellung`, `domane`, `network\s+drive`, `shared\s+drive`, `netzlaufwerk`, `updates?`, `working\s+on\s+updates`, `hochfahren`, `se\s+reinicia`, `~pcs?`, `~office`}},
}

// skillMatcher finds one vocabulary skill's terms: all its strong terms
// in one expression and all its weak ones in another, each matching the
// longest term at a place.
type skillMatcher struct {
	skill        string
	strong, weak patterns
}

// matcherCache keeps compiled matchers per vocabulary and terms; they
// change only when staff skills or the skills page do.
var matcherCache = struct {
	sync.Mutex
	m map[string][]skillMatcher
}{m: map[string][]skillMatcher{}}

// areaOf returns the area a vocabulary skill belongs to, by name, alias or
// stem.
func areaOf(skill string) (skillArea, bool) {
	for _, a := range skillAreas {
		for _, n := range a.names {
			if n == skill || stem(n) == stem(skill) {
				return a, true
			}
		}
	}
	return skillArea{}, false
}

// termPattern makes a regular expression of a term an admin wrote: its
// words, matched whole, in folded form, any run of spaces or hyphens
// between them.
func termPattern(term string) string {
	words := strings.FieldsFunc(fold(term), func(r rune) bool { return r == ' ' || r == '-' || r == '_' || r == '\t' })
	for i, w := range words {
		words[i] = regexp.QuoteMeta(w)
	}
	return strings.Join(words, `[\s-]+`)
}

// plainTerm is the expression matching a term written as plain text (a
// skill's name, a word admins gave it) whole: bounded by word boundaries on
// the sides where it starts or ends with a letter or digit, so "c#", "c++"
// and ".net" match too. suffix is an optional ending, such as "(s|es)?".
func plainTerm(term, suffix string) string {
	p := termPattern(term)
	if p == "" {
		return ""
	}
	f := []rune(strings.TrimSpace(fold(term)))
	word := func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }
	if word(f[0]) {
		p = `\b` + p
	}
	if word(f[len(f)-1]) {
		p += suffix + `\b`
	}
	return p
}

// matchers compiles the terms of each vocabulary skill: its name, stem and
// aliases, its area's terms, and the terms given it on the skills page.
// They match folded text.
func matchers(vocabulary []string, own map[string][]string) []skillMatcher {
	vocabulary = tickets.NormalizeSkills(vocabulary)
	var key strings.Builder
	key.WriteString(strings.Join(vocabulary, ","))
	for _, v := range vocabulary {
		key.WriteString("\x00" + v + "=" + strings.Join(own[v], "\x01"))
	}
	matcherCache.Lock()
	defer matcherCache.Unlock()
	if m, ok := matcherCache.m[key.String()]; ok {
		return m
	}
	if len(matcherCache.m) > 32 {
		clear(matcherCache.m)
	}
	var out []skillMatcher
	for _, v := range vocabulary {
		var strong, weak []string
		add := func(pattern string, isWeak bool) {
			if _, err := regexp.Compile(pattern); err != nil {
				return
			}
			if isWeak {
				weak = append(weak, pattern)
			} else {
				strong = append(strong, pattern)
			}
		}
		names := []string{v, stem(v)}
		names = append(names, skillAliases[v]...)
		for _, n := range names {
			if p := plainTerm(n, `(s|es)?`); p != "" {
				add(p, false)
			}
		}
		if a, ok := areaOf(v); ok {
			for _, t := range a.terms {
				add(`\b(?:`+strings.TrimPrefix(t, "~")+`)\b`, strings.HasPrefix(t, "~"))
			}
		}
		for _, t := range own[v] {
			if p := plainTerm(t, ""); p != "" {
				add(p, false)
			}
		}
		m := skillMatcher{skill: v, strong: compileTerms(strong), weak: compileTerms(weak)}
		out = append(out, m)
	}
	matcherCache.m[key.String()] = out
	return out
}

// passingRe are phrases in which a skill's word passes by without being
// the problem: how people reached us or want to be reached, and the
// workarounds they use meanwhile.
var passingRe = compilePatterns(`\b(customers?|clients?|people|they|contacts)\s+(are\s+)?(already\s+)?(emailing|calling|writing\s+to|phoning)\s+(us|me)\b|\bcalling\s+and\s+writing\s+to\s+us\b` +
	`|\b(e-?mail|write\s+to|call)\s+(us|me)\b|\b(by|per|via|par|por)\s+(e-?mail|correo|mail)\b|\breply\s+to\s+this\s+e-?mail\b|\b(call|ring)\s+me\s+back\b|\bon\s+the\s+number\s+below\b` +
	`|\b(an?|the|this)\s+(suspicious|strange|weird|fake|phishing)\s+(e-?mail|mail)\b|\b(got|received|opened)\s+an?\s+(e-?mail|mail)\b|\bin\s+an?\s+(e-?mail|mail)\b|\ba\s+link\s+in\s+an?\s+(e-?mail|mail)\b|\b(une?|einer|un|una)\s+(mail|e-?mail|correo)\s+(von|de|da|que|qui)\b|\ble\s+courrier\b` +
	`|\bcome\s+in\s+by\s+e-?mail\b|\bbookings\s+come\s+in\s+by\s+e-?mail\b|\bper\s+mail\b|\bpor\s+correo\b|\bper\s+e-?mail\b|\bpar\s+e-?mail\b|\bpor\s+email\b|\bper\s+mail\b`)

// workaroundRe marks a sentence that tells how the requester gets by
// meanwhile: its devices and services are not what needs fixing.
var workaroundRe = compilePatterns(`\b(for\s+now|meanwhile|in\s+the\s+meantime|instead|solange|vorerst|en\s+attendant|mientras\s+tanto|de\s+momento|nel\s+frattempo|enquanto\s+isso|zolang|i'?m\s+working\s+on|arbeite\s+(solange|mit)|travaille\s+sur|uso\s+el|lavoro\s+dal|estou\s+usando|werk\s+zolang)\b`)

// segment is a part of a ticket with the weight its words carry: the
// subject and the opening sentences say what the ticket is about; a word
// further down is more likely a passing mention.
type segment struct {
	text   string
	weight float64
}

// segments splits a ticket (already scrubbed of planted text and of
// signatures) into weighted, folded parts: the subject (3), the first two
// sentences (2), the rest (1); sentences about a workaround weigh little.
func segments(subject, body string) []segment {
	var out []segment
	if s := strings.TrimSpace(fold(subject)); s != "" {
		out = append(out, segment{passingRe.ReplaceAllString(s, " "), 3})
	}
	n := 0
	for _, p := range paragraphs(body) {
		for _, s := range p.sentences {
			f := passingRe.ReplaceAllString(fold(s), " ")
			w := 1.0
			if n < 2 {
				w = 2
			}
			if workaroundRe.MatchString(f) {
				w = 0.25
			}
			if greetingLine.MatchString(strings.TrimSpace(f)) {
				continue
			}
			out = append(out, segment{f, w})
			n++
		}
	}
	return out
}

var greetingLine = regexp.MustCompile(`^(hi|hello|hey|dear|good\s+(morning|afternoon|evening)|hallo|guten\s+(morgen|tag)|moin|bonjour|bonsoir|hola|buenos\s+dias|buenas|buongiorno|salve|ciao|ola|oi|bom\s+dia|boa\s+tarde|goedemorgen|goedemiddag|beste)\b[^.!?]{0,40}[,!.]?$`)

// skillHit is one term of a skill found in a segment.
type skillHit struct {
	skill      string
	text       string
	start, end int
	weight     float64
	weak       bool
}

// hitsIn finds the skills' terms in the segments. Where terms overlap, the
// longest wins ("network drive" is the drive, not the network; "scan to
// email" the scanner, not the mailbox), and each stretch of text counts
// once.
func hitsIn(segs []segment, ms []skillMatcher) []skillHit {
	var out []skillHit
	for _, sg := range segs {
		var all []skillHit
		for _, m := range ms {
			for _, x := range []struct {
				terms patterns
				weak  bool
			}{{m.strong, false}, {m.weak, true}} {
				x.terms.candidates(sg.text, func(re *regexp.Regexp) bool {
					for _, loc := range re.FindAllStringIndex(sg.text, -1) {
						w := sg.weight
						if x.weak {
							w /= 2
						}
						all = append(all, skillHit{skill: m.skill, text: sg.text[loc[0]:loc[1]], start: loc[0], end: loc[1], weight: w, weak: x.weak})
					}
					return true
				})
			}
		}
		sort.SliceStable(all, func(i, j int) bool {
			li, lj := all[i].end-all[i].start, all[j].end-all[j].start
			if li != lj {
				return li > lj
			}
			return all[i].weight > all[j].weight
		})
		var taken []skillHit
	next:
		for _, h := range all {
			for _, t := range taken {
				if h.start < t.end && t.start < h.end {
					continue next
				}
			}
			taken = append(taken, h)
		}
		out = append(out, taken...)
	}
	return out
}

// skillsOf scores each vocabulary skill in the segments and keeps the
// strongest, and others only when they are nearly as clear; at most three.
// A skill's score is, for each distinct word of it found, the weight of
// the strongest place it was found in, and a little more for each further
// place. The evidence is the words found, per skill.
func skillsOf(segs []segment, vocabulary []string, own map[string][]string) ([]string, map[string][]string, map[string]float64) {
	best := map[string]map[string]float64{}
	count := map[string]map[string]int{}
	evidence := map[string][]string{}
	strong := map[string]bool{}
	for _, h := range hitsIn(segs, matchers(vocabulary, own)) {
		strong[h.skill] = strong[h.skill] || !h.weak
		if best[h.skill] == nil {
			best[h.skill], count[h.skill] = map[string]float64{}, map[string]int{}
		}
		best[h.skill][h.text] = max(best[h.skill][h.text], h.weight)
		count[h.skill][h.text]++
		if !slices.Contains(evidence[h.skill], h.text) {
			evidence[h.skill] = append(evidence[h.skill], h.text)
		}
	}
	scores := map[string]float64{}
	for skill, words := range best {
		if !strong[skill] {
			// Words that also pass by in other tickets do not make a
			// skill on their own.
			continue
		}
		for w, b := range words {
			scores[skill] += b + 0.25*float64(min(count[skill][w]-1, 2))
		}
	}
	return pickSkills(scores), evidence, scores
}

// pickSkills keeps the best-scored skill, and the next ones while they
// score at least 60% of it; at most three, each at least 1.
func pickSkills(scores map[string]float64) []string {
	type scored struct {
		skill string
		score float64
	}
	var found []scored
	for k, v := range scores {
		if v >= 1 {
			found = append(found, scored{k, v})
		}
	}
	sort.Slice(found, func(i, j int) bool {
		if found[i].score != found[j].score {
			return found[i].score > found[j].score
		}
		return found[i].skill < found[j].skill
	})
	var skills []string
	for i, f := range found {
		if i >= 3 || (i > 0 && f.score < found[0].score*0.6) {
			break
		}
		skills = append(skills, f.skill)
	}
	return tickets.NormalizeSkills(skills)
}

// supported reports whether the text has a strong term of the skill: a
// skill a model names stands only when the ticket speaks of it.
func supported(skill string, segs []segment, vocabulary []string, own map[string][]string) bool {
	for _, m := range matchers(append(slices.Clone(vocabulary), skill), own) {
		if m.skill != skill {
			continue
		}
		for _, sg := range segs {
			if m.strong.MatchString(sg.text) {
				return true
			}
		}
	}
	return false
}

// KnownSkill reports whether triage knows words of its own for a skill
// (its area: "postgres" is a database skill), beyond its name and what
// admins give it.
func KnownSkill(name string) bool {
	_, ok := areaOf(normalizeSkill(name))
	return ok
}
