package triage

import (
	"strings"

	"ticketd/tickets"
)

// The rules read a ticket's priority the way a person on a help desk does:
// from what happened and to whom, not from the words the requester chose.
// A ticket is high when the business is hurt now or within the day: a
// service people depend on is down for many, many people cannot work, a
// security incident shows its symptoms, data is lost or about to be, money
// is charged wrongly at scale, or a problem blocks a deadline of today or
// tomorrow morning. It is low when nothing is hurting anyone: a question, a
// request, feedback, a plan. Everything else is medium. "Not urgent" and
// questions pull a ticket down only when nothing severe is described.
//
// Each family below is one kind of evidence, in English, German, French,
// Spanish, Italian, Portuguese and Dutch, matched against folded text (see
// fold): lower case, accents off.

func family(parts ...string) patterns {
	return compilePatterns(strings.Join(parts, "|"))
}

var (
	// down: a service or device is down, unreachable or refusing work.
	downRe = family(
		`\b(is|are|was|were|went|goes|been|has gone|have gone)\s+(completely\s+|totally\s+|all\s+)?(down|offline|dead)\b`,
		`\bdown\s+(for|since)\b|\boutages?\b|\bunreachable\b|\bunavailable\b|\b(site|server|website|shop|system|service|network|internet|vpn|email|mail|app|api|database|cluster|portal)\s+(is\s+|are\s+)?(down|offline|dead)\b`,
		`\b(not|isn'?t|aren'?t|no\s+longer)\s+(reachable|accessible|available|responding|loading|starting)\b|\b(refus\w*|rejects?|not\s+accepting)\s+(every\s+|all\s+|any\s+)?(new\s+)?(connections?|writes|requests)\b`,
		`\b(50[0234])\b|\binternal\s+server\s+error\b|\bbad\s+gateway\b|\bservice\s+unavailable\b|\btoo\s+many\s+(connections|clients)\b|\berror\s+establishing\b`,
		`\b(won'?t|doesn'?t|does\s+not|will\s+not)\s+(start|boot|turn\s+on|come\s+back|load)\b|\bhasn'?t\s+come\s+back\b|\bkeeps?\s+restarting\b|\bnotready\b|\bstopped\s+(accepting|working|replicating|responding)\b|\bcut\s+off\b|\bblank\s+page\b|\bno\s+bootable\b|\bnot\s+a\s+single\b`,
		`\b(completely|totally)\s+(down|offline|dead)\b|\b(is|was|are|were|been)\s+(suspended|deactivated|disabled)\b|\bcan'?t\s+get\s+online\b|\bhasn'?t\s+received\s+a\s+single\b|\bmailbox\s+unavailable\b|\bno\s+(internet|network|connection|connectivity|orders|bookings|incoming\s+e?-?mail)\b|\bread-only\b|\bcan'?t\s+(be\s+)?(reached|opened)\b|\bnone\s+of\s+the\s+\w+\s+(turn|work|start)`,
		// German
		`\bausgefallen\b|\bausfall\b|\bnicht\s+(mehr\s+)?(erreichbar|verfugbar)\b|\breagiert\s+(gar\s+)?nicht(\s+mehr)?\b|\bantwortet\s+nicht\b|\bsteht\s+still\b|\bstartet\s+nicht(\s+mehr)?\b|\bverbindung\s+verweigert\b|\bkein(e|en)?\s+(internet|netz|e-?mails?\s+mehr|verbindung)\b|\bkommen\s+(bei\s+uns\s+)?keine\b|\bgeht\s+(gar\s+)?nichts?\s+mehr\b|\bweg\b`,
		// French
		`\ben\s+panne\b|\bpanne\b|\bhors\s+(service|ligne)\b|\binaccessible\b|\bindisponible\b|\bne\s+(repond|fonctionne|marche|demarre)\s+(plus|pas)\b|\bplus\s+(d'|de\s+)?(internet|acces|reseau)\b|\bplus\s+aucun\b|\bne\s+demarre\b`,
		// Spanish
		`\bcaid[oa]s?\b|\bse\s+ha\s+caido\b|\bfuera\s+de\s+servicio\b|\bno\s+responde\b|\binaccesible\b|\bsin\s+(internet|conexion|servicio|correo)\b|\bno\s+(arranca|enciende)\b|\bno\s+recibimos\s+ningun\b|\bningun[ao]?\s+de\s+las\b`,
		// Italian
		`\bnon\s+risponde\b|\birraggiungibile\b|\bfuori\s+servizio\b|\bnon\s+si\s+accende\b|\bnon\s+riceviamo\s+(piu\s+)?nessun\w*|\bsenza\s+(internet|rete)\b|\bnessuna\s+delle\b|\bnon\s+arrivano\s+piu\b`,
		// Portuguese
		`\bfora\s+do\s+ar\b|\bcaiu\b|\bindisponivel\b|\bnao\s+responde\b|\btravad[oa]\b|\bsem\s+(internet|acesso|conexao)\b|\bnao\s+liga\b|\bninguem\s+recebe\b|\bnenhum\s+dos\b`,
		// Dutch
		`\bligt\s+(eruit|plat)\b|\bonbereikbaar\b|\bniet\s+(meer\s+)?bereikbaar\b|\breageert\s+niet(\s+meer)?\b|\bdoet\s+het\s+niet\b|\bstart\s+niet(\s+meer)?\s+op\b|\bgeen\s+(internet|verbinding|e-?mail\s+meer)\b|\bgeen\s+enkele\b|\bontvangt\s+niemand\b`,
	)

	// many: many people, a whole site or all customers are affected.
	manyRe = family(
		`\b(nobody|no\s+one|no-one|none\s+of\s+(us|our|the)|every(one|body)|all\s+(of\s+)?(our\s+|the\s+|its\s+)?(users|customers|clients|staff|employees|colleagues|people|subscribers|guests|visitors|sites|offices|locations|tills|services|pcs|computers|workstations|customer-facing)|whole\s+(company|office|team|building|department|site|floor|organi[sz]ation|staff)|entire\s+(company|office|team|building|department|site|staff)|(company|office|building)-wide|both\s+(sites|offices|locations))\b`,
		`\b\d[\d,.]*\s+(people|users|staff|employees|colleagues|customers|subscribers|persons|guests|members|of\s+us)\b|\b(dozens|hundreds|thousands)\s+of\s+(people|users|customers|employees)\b|\bfor\s+(everyone|all\s+users)\b`,
		`\bniemand\b|\bkeiner\s+(von|der)\b|\balle\s+(\w+\s+)?(mitarbeiter(innen)?|kunden|benutzer|nutzer|kollegen|rechner|pcs|filialen|standorte)\b|\b(das|die)?\s*ganze[ns]?\s+(buro|firma|unternehmen|team|abteilung|haus|gebaude)\b|\bgesamte[ns]?\s+(buro|firma|unternehmen|team|abteilung|belegschaft)\b|\b\d+\s+(mitarbeiter|leute|personen|kollegen|kunden)\b`,
		`\bpersonne\s+(ne|n')|\baucun\s+(collaborateur|utilisateur|employe|client|salarie)\b|\btous\s+(les|nos)\s+(utilisateurs|clients|collaborateurs|employes|salaries|postes)\b|\btout\s+le\s+(monde|bureau|personnel|service)\b|\btoute\s+(l'entreprise|la\s+societe|l'agence|l'equipe)\b|\b\d+\s+(personnes|collaborateurs|employes|utilisateurs|clients)\b|\bune\s+(vingtaine|trentaine|quarantaine|cinquantaine|centaine)\s+de\b`,
		`\bnadie\b|\bningun\s+(empleado|usuario|cliente|trabajador)\b|\btodos\s+(los|nuestros)\s+(usuarios|clientes|empleados|companeros|ordenadores)\b|\btoda\s+la\s+(empresa|oficina|plantilla)\b|\b\d+\s+(personas|empleados|usuarios|clientes|trabajadores)\b|\bsomos\s+\d+\b`,
		`\bnessuno\b|\bnessun\s+(dipendente|utente|cliente)\b|\btutti\s+(i|gli|i\s+nostri)\s+(utenti|clienti|dipendenti|colleghi)\b|\btutta\s+l'(azienda|ufficio)\b|\btutto\s+l'ufficio\b|\b\d+\s+(persone|dipendenti|utenti|clienti)\b|\bsiamo\s+\d+\b`,
		`\bninguem\b|\bnenhum\s+(funcionario|usuario|cliente|colaborador)\b|\btodos\s+os\s+(usuarios|clientes|funcionarios|colaboradores)\b|\b(a\s+)?empresa\s+(toda|inteira)\b|\b(o\s+)?escritorio\s+(todo|inteiro)\b|\btoda\s+a\s+empresa\b|\b\d+\s+(pessoas|funcionarios|usuarios|clientes)\b|\bsao\s+\d+\b`,
		`\bniemand\b|\balle\s+(gebruikers|medewerkers|klanten|collega'?s)\b|\bhet\s+hele\s+(bedrijf|kantoor|team|pand)\b|\b\d+\s+(mensen|medewerkers|gebruikers|klanten)\b`,
	)

	// business: what the business runs on is hit: production, the shop,
	// customers, orders, payments, bookings.
	businessRe = family(
		`\bproduction\b|\bprod\b|\blive\s+(site|system|shop)\b|\b(some\s+|all\s+|our\s+)?customers?\s+(can'?t|cannot|are\s+unable\s+to|get\s+an?\s+error|see\s+an?\s+error)\b|\b(can'?t|cannot)\s+ship\b|\bservice\s+is\s+suspended\b|\b(orders|bookings|sales|payments?)\s+(are\s+)?(failing|lost|stopped)\b|\bno\s+orders\b|\bcheckout\b|\bcan'?t\s+(take|accept)\s+(card\s+)?payments\b|\b(losing|lost)\s+(money|sales|orders)\b|\bbusiest\b|\bcustomer-facing\b|\bfront\s+desk\b|\bguests\s+can'?t\b`,
		`\bproduktion\w*\b|\bkunden\s+konnen\s+nicht\w*\b|\bkeine\s+(bestellungen|auftrage)\b|\bkasse\b|\bumsatz\b|\bauftrage\s+buchen\b`,
		`\bproduction\b|\bclients\s+(ne\s+peuvent|voient)\b|\bnos\s+commandes\b|\bencaisser\b|\bperdons\b`,
		`\bproduccion\b|\bclientes\s+(no\s+pueden|ven)\b|\bningun\s+pedido\b|\bno\s+podemos\s+cobrar\b|\breservas\b`,
		`\bproduzione\b|\bnon\s+arrivano\s+piu\s+ordini\b|\bnon\s+possiamo\s+accettare\b|\bclienti\s+sono\s+bloccati\b`,
		`\bproducao\b|\bnao\s+entra\s+nenhum\s+pedido\b|\bnao\s+conseguimos\s+aceitar\b|\bclientes\s+estao\s+sem\b`,
		`\bproductie\w*\b|\ber\s+komen\s+geen\s+bestellingen\b|\bniet\s+pinnen\b`,
	)

	// shared: a service the whole organisation runs on, named as ours: when
	// it is down, everyone is.
	sharedRe = family(
		`\b(our|the\s+company'?s?|the\s+office'?s?)\s+(\w+\s+){0,2}(server|website|site|web\s?shop|shop|network|internet|vpn|mail\s+server|e-?mail|exchange|database|erp|crm|system|firewall|router|cluster|api|booking\s+system|portal|mail)\b|\bthe\s+(erp|crm|mail\s+server|file\s+server|intranet)\b|\b(whole|entire)\s+(application|app|system|site|shop)\b|\b(offices|branches|sites|stores|warehouses)\b`,
		`\b(our|the)\s+company\s+(hasn'?t|has\s+not|can'?t|cannot|isn'?t)\b|\bin\s+the\s+company\b|\b(unser(e|en|em)?|die\s+firma)\s+(\S+[\s-])?(server|webseite|homepage|onlineshop|netzwerk|datenbank|warenwirtschaft|e-?mails?)\b|\bganze(n)?\s+(anwendung|system|app)\b|\bbei\s+uns\b`,
		`\b(notre|nos)\s+(serveur|site|boutique|reseau|messagerie|base)\b|\btoute\s+l'entreprise\b|\ben\s+la\s+empresa\b|\bnuestr[oa]\s+(servidor|tienda|web|red|base)\b|\bil\s+nostro\s+(server|negozio|sito)\b|\bin\s+tutta\s+l'azienda\b|\bnoss[oa]\s+(servidor|loja|site|rede|banco)\b|\bna\s+empresa\b|\bonze\s+(server|webshop|website|database)\b|\bin\s+het\s+bedrijf\b`,
	)

	// blocked: people cannot do their work.
	blockedRe = family(
		`\b(nobody|no\s+one|none\s+of\s+(us|our\s+\w+))\b[^.!?\n]{0,50}\b(can|could|is\s+able\s+to)\s+(log|sign|get|connect|work|access|use|open|print|send|receive|reach|book|check|enter|do|take|pay)\b|\b(can'?t|cannot|unable\s+to|couldn'?t)\s+work\b|\b(team|staff|everyone|we)\s+(is|are)\s+(all\s+)?blocked\b|\bsitting\s+around\b|\bat\s+a\s+standstill\b|\buseless\s+without\b|\bcan'?t\s+(check\s+anyone\s+in|book|enter\s+their|ship|print\s+shipping)\b`,
		`\b(konnen|kann)\s+nicht\s+arbeiten\b|\bstillstand\b|\bniemand\s+(kann|konnen)\b`,
		`\bne\s+(peuvent|peut)\s+(pas|plus)\s+travailler\b|\bpersonne\s+ne\s+peut\b`,
		`\bsin\s+poder\s+trabajar\b|\bno\s+(pueden|puede)\s+trabajar\b|\bnadie\s+puede\b`,
		`\bpersone\s+ferme\b|\bnon\s+(possono|riesce\s+a)\s+lavorare\b|\bnessuno\s+riesce\b`,
		`\bpessoas\s+paradas\b|\bnao\s+(conseguem|consegue)\s+trabalhar\b|\bninguem\s+consegue\b`,
		`\b(kunnen|kan)\s+niet\s+werken\b|\bniemand\s+kan\b`,
	)

	// incident: the symptoms of a security incident.
	incidentRe = family(
		// a password given to a fake page
		`\b(typed|entered|put|gave|submitted|logged\s+in)\b[^.!?\n]{0,40}\b(password|credentials|login|details|on\s+the\s+page)\b[^.!?\n]{0,60}|\bon\s+the\s+page\s+it\s+linked\b|\b(fake|phishing|spoofed)\s+(\w+\s+)?(page|site|website|login)\b[^\n]*\b(password|credentials)\b|\bpassword\b[^.!?\n]{0,40}\b(fake|phishing)\b`,
		`\b(passwort|kennwort|zugangsdaten)\b[^.!?\n]{0,40}\beingegeben\b`,
		`\bsaisi\s+(mon|mes|notre|nos|son)\s+(mot\s+de\s+passe|identifiants)\b`,
		`\b(puse|escribi|introduje|meti)\s+(mi|mis)\s+(contrasena|credenciales|clave)\b`,
		`\b(inserito|digitato|messo)\s+(la\s+)?(mia\s+)?(password|credenziali)\b`,
		`\b(digitei|coloquei|inseri)\s+(a\s+)?minha\s+senha\b`,
		`\bwachtwoord\b[^.!?\n]{0,40}\b(ingevuld|ingevoerd|ingetypt)\b`,
		// ransomware
		`\bransom\w*|\branc[oa]n\b|\blosegeld\b|\brescate\b|\briscatto\b|\bresgate\b|\blosgeld\b|\bbitcoins?\b|\bpay\s+to\s+get\s+(them|it|our\s+files)\s+back\b|\.(locked|lockd|crypt|crypted|enc|encrypted)\b|\b(files|dateien|fichiers|archivos|file|arquivos|bestanden)\b[^.!?\n]{0,60}\b(encrypted|verschlusselt|chiffres|cifrados|criptati|criptografados|versleuteld)\b|\b(all|alle|tous|todos|tutti)\b[^.!?\n]{0,30}\b(encrypted|verschlusselt|chiffres|cifrados|criptati|versleuteld)\b`,
		// secrets published
		`\b(api[\s-]?(key|schlussel|sleutel)|access\s+key|secret\s+key|secrets?|tokens?|credentials|zugangsdaten|cle\s+api|claves?\s+de\s+acceso|chiave\s+api|chave\s+de\s+api|api-sleutel|passwords?)\b[^\n]{0,80}\b(public|offentlich\w*|publi\w*|openbare?|pastebin)\b`,
		`\b(pushed|published|committed|uploaded|hochgeladen|publie|subio|pubblicato|publicou|gezet)\b[^\n]{0,60}\b(key|keys|secret|schlussel|zugangsdaten|cle|claves|chiave|chave|sleutel)\b`,
		`\b(leaked|leak|gelekt|geleakt|vazad[oa]|filtrad[oa]|fuite)\b`,
		// a second factor or phone number taken over
		`\b(number|sim)\b[^.!?\n]{0,30}\b(moved|ported|transferred|swapped)\b|\bsim\s+swap\w*|\btaken\s+over\b|\bcodes?\b[^.!?\n]{0,40}\b(go|goes|going)\s+(somewhere\s+else|to\s+(a\s+)?(different|another|new))\b`,
		// logins nobody recognises, accounts nobody made
		`\b(wasn'?t|was\s+not|it\s+wasn'?t)\s+me\b|\bnone\s+of\s+us\s+(created|made|did)\b|\bnobody\s+here\s+(created|made)\b|\b(new|unknown|strange|unrecogni[sz]ed)\s+(admin|administrator)\s+(user|account)\b|\b(admin|administrator)\s+account\s+["'\w]*\s*that\s+none\b|\bnew\s+administrator\s+account\b`,
		`\b(niemand\s+von\s+uns|aucun\s+de\s+nous|ninguno\s+de\s+nosotros|nessuno\s+di\s+noi|nenhum\s+de\s+nos|niemand\s+van\s+ons)\b[^.!?\n]{0,12}\b(hat|a|n'a|ha|l'ha|heeft|fez|hizo|ha\s+hecho)\b`,
		`\b(neuer|nouvel|nuevo|nuovo|novo|nieuwe)\s+(\w+\s+)?(admin\w*|amministratore)\b`,
		`\bweiterleitungsregeln\b|\bforwarding\s+rules?\b`,
		// a mailbox sending what its owner did not write
		`\b(i\s+)?(never|didn'?t|did\s+not)\s+(send|sent|write|wrote)\b|\bhundreds\s+of\s+(messages|e?-?mails)\b[^.!?\n]{0,40}\b(didn'?t|not)\b|\bhe\s+never\s+sent\b`,
		`\b(hunderte|centaines|cientos|centinaia|centenas|honderden)\b[^.!?\n]{0,40}\b(mails|e-?mails|correos|phishing\w*|messages)\b`,
		`\bje\s+n'ai\s+rien\s+envoye\b|\byo\s+no\s+(los\s+)?envie\b|\bnon\s+ho\s+scritto\b|\beu\s+nao\s+enviei\b|\bniet\s+heb\s+geschreven\b`,
		// malware, intrusion, exposure, theft
		`\b(trojan|trojaner|cobalt\s*strike|keylogger|rootkit|ransomware|spyware|backdoor|malware|virus)\b[^.!?\n]{0,80}\b(found|detected|alert\w*|running|couldn'?t\s+remove|gefunden|entdeckt|detecte|detectado|rilevato|detectado|gevonden)\b|\b(found|detected)\b[^.!?\n]{0,30}\b(trojan|malware|virus|ransomware)\b`,
		`\b(hacked|compromised|gehackt|kompromittiert|pirate|piratee|hackead[oa]|comprometid[oa]|compromess[oa]|invadid[oa])\b`,
		`\b(xss|sql\s+injection|remote\s+code\s+execution|rce|vulnerabilit(y|ies)|exploit\w*|cve-\d+)\b[^.!?\n]{0,80}\b(found|discovered|allows?|exploitable|running|in\s+your|being\s+exploited)\b|\b(found|discovered)\b[^.!?\n]{0,40}\b(xss|sql\s+injection|vulnerabilit(y|ies)|exploit)\b`,
		`\b(data\s+)?breach\b|\bdatenleck\b|\bfuite\s+de\s+donnees\b|\bbrecha\b|\bvazamento\b|\bdatalek\b`,
		`\b(see|saw|seeing|visible|could\s+see|can\s+see)\b[^.!?\n]{0,40}\b(another|other|someone\s+else'?s?)\s+(company'?s?|customer'?s?|user'?s?|client'?s?)\b`,
		`\b(redirect\w*|umgeleitet|redirige\w*|redireccion\w*|reindirizz\w*|redireciona\w*|doorgestuurd)\b[^.!?\n]{0,60}\b(casino|gambling|porn\w*|pharma\w*|spam|fake|gefalscht\w*|gewinnspiel\w*|fremde|faux|falsos?|false|nep)\b`,
		`\b(casino|gambling|porn\w*|pharma\w*|gefalscht\w*|gewinnspiel\w*|fremde\s+seiten)\b[^.!?\n]{0,60}\b(redirect\w*|umgeleitet|redirige\w*|redireccion\w*|reindirizz\w*|redireciona\w*|doorgestuurd)\b`,
		`\b(stolen|gestohlen|vole|robad[oa]|rubat[oa]|roubad[oa]|gestolen)\b`,
		`\b(wire\s+transfer|uberweisung|virement|transferencia)\b[^\n]{0,200}\b(never\s+sent|hacked|fraud|betrug|fraude)\b`,
	)

	// strangeLoginRe: logins from where nobody of the desk's customer is;
	// an incident unless they all failed.
	strangeLoginRe = family(
		`\b(logins?|log-?ins?|sign-?ins?|accessed|anmeldungen|connexions|inicios\s+de\s+sesion|accessi|acessos)\b[^.!?\n]{0,80}\b(unknown|unrecogni[sz]ed|another\s+country|abroad|new\s+device|unbekannt\w*|inconnu\w*|desconocid\w*|sconosciut\w*|desconhecid\w*|onbekend\w*|nigeria|russland|russia|china|paises\s+donde|niemand\s+von\s+uns)\b`,
	)
	// failedOnlyRe: attempts that did not get in.
	failedOnlyRe = family(
		`\bfailed\s+(\w+\s+)?(login|log-?in|sign-?in|logon)\s+attempts\b|\bbrute[\s-]?force\b|\b(nobody|nothing|no\s+one|none)\s+(got|get)\s+in\b|\bnone\s+(of\s+them\s+)?succeeded\b`,
		`\bfehlgeschlagene\s+anmeldeversuche\b|\btentatives\s+(de\s+connexion\s+)?echouees\b|\bintentos\s+fallidos\b|\btentativi\s+(di\s+accesso\s+)?falliti\b|\btentativas\s+falhadas\b|\bmislukte\s+inlogpogingen\b`,
	)

	// lost: data lost, overwritten or corrupted, and the scale that makes
	// it grave.
	lostRe = family(
		`\b(deleted|wiped|erased|lost|gone|overwritten|corrupt(ed)?|truncated|dropped|emptied|disappeared|vanished|missing)\b`,
		`\bdelete\s+without\s+a\s+where\b`,
		`\b(geloscht|geloescht|uberschrieben|verloren|beschadigt|weg)\b`,
		`\b(supprime\w*|efface\w*|vide[e]?|perdu\w*|disparu\w*|ecrase\w*|corrompu\w*)\b`,
		`\b(borrad[oa]s?|eliminad[oa]s?|perdid[oa]s?|desaparecid[oa]s?|sobrescrit[oa]s?|danad[oa]s?)\b`,
		`\b(cancellat[oi]|pers[oi]|sparit[oi]|sovrascritt[oi]|corrott[oi])\b`,
		`\b(apagad[oa]s?|excluid[oa]s?|sumiu|sumiram|sobrescrit[oa]s?|corrompid[oa]s?)\b`,
		`\b(verwijderd|kwijt|overschreven|corrupt)\b`,
	)
	// lotsRe: the scale of data: many records or files, a whole table,
	// folder or database.
	lotsRe = family(
		`\b\d[\d,.]*\s+(\w+\s+)?(records|rows|files|orders|entries|customers?|documents|photos|e?-?mails|kundendatensatze|datensatze|dateien|commandes|enregistrements|registros|fichiers|archivos|record|file|arquivos|klantrecords|bestanden)\b`,
		`\b(whole|entire|all|complete)\s+(\w+\s+)?(table|database|folder|share|drive|mailbox|archive|years?)\b|\bthe\s+(\w+\s+)?(table|database)\b|\bcatalog\s+corrupted\b`,
		`\b(ganze|gesamte|alle)\s+(\w+\s+)?(tabelle|datenbank|ordner|laufwerk)\b|\bdatensatze\b|\bdatenbank\b`,
		`\b(toute|tout)\s+(la|le)\s+(table|base|dossier)\b|\bla\s+table\s+des\b|\bbase\s+de\s+(donnees|production)\b`,
		`\bregistros\s+de\s+clientes\b|\bbase\s+de\s+datos\b`,
		`\brecord\s+di\s+clienti\b|\bdatabase\s+di\s+produzione\b`,
		`\bregistros\s+de\s+clientes\b|\bbanco\s+de\s+dados\b`,
		`\bklantrecords\b|\bproductiedatabase\b`,
	)
	// backupFailRe: backups failing.
	backupFailRe = family(
		`\b(backups?|back-ups?|sicherung\w*|datensicherung\w*|sauvegardes?|copias?\s+de\s+seguridad|backup)\b[^\n]{0,120}\b(fail\w*|not\s+run|haven'?t\s+run|hasn'?t\s+run|abbricht|abgebrochen|fehlgeschlagen|fehler|mislukt|echou\w*|echec|fall(a|an|ando|o|ido)\w*|fallisc\w*|non\s+riusciti|falh\w*)\b`,
	)
	// noCopyRe: no other or recent copy of the data.
	noCopyRe = family(
		`\b(no|keine?|aucune|ninguna|nessuna|nenhuma|geen)\s+(recent|aktuelle|copie\s+recente|copia\s+reciente|copia\s+recente|copia|kopie|andere\s+kopie|other\s+copy|another\s+copy)\b|\bonly\s+copy\b|\bdon'?t\s+have\s+(another|any\s+other|a)\s+copy\b|\blast\s+(good|working)\s+backup\b|\bletzte\s+funktionierende\b|\bultima\s+copia\s+(buena|valida)\b|\blaatste\s+goede\b|\bderniere\s+copie\b|\baucune\s+copie\b|\bnenhuma\s+copia\b|\bno\s+recent\s+backup\b`,
	)
	// dyingRe: a disk or device about to fail.
	dyingRe = family(
		`\b(clicking\s+noises?|asks\s+to\s+format|disk\s+(error|warning|failure)s?|smart\s+(error|warning)|festplattenfehler|erreurs?\s+disque|avisos\s+de\s+error|errori|da\s+errori|erros\s+no\s+disco|foutmeldingen|before\s+it\s+dies)\b`,
	)
	// restoreFailRe: the restore itself fails.
	restoreFailRe = family(
		`\b(restore|wiederherstellung|restauration|restauracion|ripristino|restauracao)\b[^.!?\n]{0,40}\b(fails|failed|failing|schlagt\s+fehl|echoue|falla|fallisce|falha)\b|\brestoring\b[^.!?\n]{0,60}\bfails\b`,
	)

	// massChargeRe: money charged wrongly to many.
	massChargeRe = family(
		`\b(charged|billed|debited)\b[^\n]{0,80}\b(twice|double|two\s+times)\b[^\n]{0,0}`,
	)
	manyPayersRe = family(
		`\b(every|all)\s+(one\s+of\s+)?(our\s+)?(\d[\d,.]*\s+)?(subscribers|customers|clients|members|users)\b|\b\d[\d,.]{2,}\s+(subscribers|customers|clients)\b|\bthousands\s+of\b`,
		`\balle\s+(\w+\s+)?(kunden|abonnenten)\b|\btous\s+(nos|les)\s+(clients|abonnes)\b|\btodos\s+(nuestros|los)\s+(clientes|suscriptores)\b|\btutti\s+i\s+(nostri\s+)?(clienti|abbonati)\b|\btodos\s+os\s+(nossos\s+)?(clientes|assinantes)\b|\balle\s+(klanten|abonnees)\b`,
	)

	// todayRe: a deadline today, tonight, or first thing tomorrow: a time
	// of day with "by", "before", "until", "at"; a day word with a deadline
	// word.
	todayRe = family(
		`\b(by|before|until|till|at|no\s+later\s+than)\s+(\d{1,2}([:.]\d{2})?\s*(am|pm|a\.m\.|p\.m\.|h|o'?clock)|\d{1,2}[:.]\d{2}|noon|midnight|the\s+end\s+of\s+(the\s+)?day|end\s+of\s+day|eod|close\s+of\s+business|cob)\b`,
		`\b(before|by)\s+(tonight|this\s+(afternoon|evening))\b|\b(runs?|closes?|starts?|due|goes\s+out)\s+(tonight|today|tomorrow)\b|\btomorrow\s+(morning|at\s+\d)|\b(deadline|due)\b[^.!?\n]{0,30}\b(today|tonight|tomorrow)\b|\b(today|tomorrow)\s+at\s+\d|\bin\s+(an|one|two|three|\d)\s+hours?\b|\bwithin\s+(the|an)\s+hour\b|\bright\s+now\b|\bdeadline\b[^.!?\n]{0,40}\b\d{1,2}[:.]\d{2}\b|\b(today|tonight)\b[^.!?\n]{0,40}\bdeadline\b`,
		`\b(bis|vor|um|spatestens)\s+\d{1,2}([:.]\d{2})?\s*uhr\b|\bheute\s+(noch|bis|vor|abend|nachmittag)\b|\bmorgen\s+(fruh|um\s+\d)\b`,
		`\b(avant|a|d'ici|pour)\s+\d{1,2}\s*h(\d{2})?\b|\bce\s+soir\b|\bdemain\s+(matin|a\s+\d)\b|\bcloture\s+a\b`,
		`\b(antes\s+de\s+las|a\s+las|hasta\s+las|para\s+las)\s+\d{1,2}([:.]\d{2})?\b|\bmanana\s+a\s+las\b|\besta\s+noche\b`,
		`\b(entro\s+le|alle|prima\s+delle|entro\s+l[ae])\s+\d{1,2}([:.]\d{2})?\b|\bstasera\b|\bdomani\s+(mattina|alle)\b`,
		`\b(ate\s+as|as|antes\s+das)\s+\d{1,2}\s*h\b|\bamanha\s+(as|cedo)\b|\bhoje\s+ate\b`,
		`\b(voor|om|uiterlijk)\s+\d{1,2}([:.]\d{2})?\s*uur\b|\bvanavond\b|\bmorgen(ochtend|\s+om\s+\d)\b`,
	)
	// stakesRe: what a deadline of today is for: pay, a contract, a
	// meeting, a tender, a launch. It makes a stated time a deadline.
	stakesRe = family(
		`\b(payroll|paid|salar\w*|bank|contract|deal|client|tender|presentation|board|audit\w*|launch|campaign|subscribers|deadline|postpone|costs?\s+us|due)\b`,
		`\b(lohn\w*|gehalt|bank|angebot|vertrag|frist|abgeben)\b`,
		`\b(contrat|client|dossier|appel\s+d'offres|salaire|banque)\b`,
		`\b(nominas?|banco|cobraran|contrato|campana|clientes)\b`,
		`\b(stipendi\w*|banca|contratto|scadenza)\b`,
		`\b(folha\s+de\s+pagamento|salario|banco|campanha|clientes|prazo)\b`,
		`\b(salaris\w*|bank|contract|deadline)\b`,
	)

	// brokenRe: something does not work as it should.
	brokenRe = family(
		`\b(hasn'?t|has\s+not|haven'?t|didn'?t|did\s+not|isn'?t|is\s+not|aren'?t|not|never)\s+(been\s+)?(run|running|working|syncing|sending|receiving|loading|printing|starting|arriv\w*|receive\w*|get\w*|come\s+in|detecting|connecting|turn\s+on|open\w*)\b|\b[45]0\d\b|\bexpir(es|ing)\b|\b(higher|more)\s+than\s+(usual|expected)\b|\bovercharg\w*|\bincorrect\b|\b(twice|zweimal|deux\s+fois|dos\s+veces|due\s+volte|duas\s+vezes|twee\s+keer|en\s+double|duplicad[oa])\b|\bdoppelt\w*\s+(abgebucht|berechnet)\b|\bdoppelte\s+(abbuchung|rechnung)\b|\bdubbel\s+afgeschreven\b|\bdouble\s+(charges?|billing|payments?|debits?)\b|\bwarnings?\b|\bskipped\b|\bby\s+accident\b|\baccidentally\b|\baus\s+versehen\b|\bpar\s+erreur\b|\bsin\s+querer\b|\bper\s+sbaglio\b|\bsem\s+querer\b|\bper\s+ongeluk\b`,
		`\b(packet\s+loss|choppy|laggy|arrive\s+\d+\s+to\s+\d+\s+minutes\s+late|delayed|intermittent\w*|unstable|unreliable|refunds?|erstattung|remboursement|reembolso|rimborso|terugbetaling)\b`,
		`\b(blue\s+screen|bsod|blauer\s+bildschirm|ecran\s+bleu|pantalla\s+azul|schermata\s+blu|tela\s+azul|blauw\s+scherm)\b|\bne\s+(marche|fonctionne|repond)\w*\s+(plus|pas)\b|\bse\s+reinici\w*|\bsich\s+nicht\b|\bnon\s+si\b|\bnao\s+(liga|funciona|recebo|chega)\b|\bniet\s+meer\b|\bgaat\s+niet\b|\bdoes\s+not\b|\bfixed\b|\bcracked\b|\bfell\b|\bcame\s+off\b|\bbroke\b|\bcrawl\b|\bfalls?\b|\bsuspicious\b`,
		`\b(errors?|fail(s|ed|ing|ure)?|broken|crash(es|ed|ing)?|not\s+working|doesn'?t\s+work|won'?t|can'?t|cannot|couldn'?t|unable|stuck|slow(er)?|bounce[sd]?|jams?|locked|expired|flicker\w*|missing|wrong|drops?|disconnects?|stopped|no\s+longer|never\s+arrives?|blank|dead|weak|warn(s|ing)?|spam|overheat\w*|problem|issue|evicted|pending|keeps|dropped|rejected|denied|timeouts?|hangs?|freez\w*|offline|down|lost|deleted|overwrote|overwritten|restarting)\b`,
		`\b(fehler\w*|funktioniert\s+nicht|geht\s+nicht|kaputt|langsam|bricht\b|gesperrt|sturzt|hangt|defekt|problem|papierstau|zuruck|umgeleitet|bricht\s+ab|nicht\s+mehr)\b`,
		`\b(erreur|echou\w*|ne\s+marche|ne\s+fonctionne|bloque\w*|plante|lent\w*|coupe|deconnecte|casse|fissure|bourrage|probleme|ne\s+recois|n'arrive|arrivent\s+dans)\b`,
		`\b(error|falla\w*|no\s+funciona|bloquead[oa]|lent[oa]s?|se\s+cierra|se\s+corta|rot[oa]|rebot\w*|se\s+reinicia|se\s+calienta|atasco|problema|vuelven|no\s+me\s+llegan|tardan|sigue\s+sin)\b`,
		`\b(errore|non\s+funziona|bloccat[oa]|lent[ie]|si\s+chiude|si\s+disconnette|inceppa\w*|problema|tornano|dura\s+solo|finiscono|continua\s+a\s+non|si\s+blocca)\b`,
		`\b(erro|falha\w*|nao\s+funciona|bloquead[oa]|lent[oa]s?|fecha\s+quando|cai\s+a|quebrad[oa]|travad[oa]|preso|problema|voltam|parou|caindo|continua\s+sem|dá\s+erro|da\s+erro)\b`,
		`\b(fout\w*|werkt\s+niet|geblokkeerd|traag|sluit\s+af|valt\s+(steeds\s+)?weg|kapot|loopt\s+vast|lawaai|storing|mislukt|terugkomen|komen\s+in)\b`,
	)

	// calmRe: a workaround exists, or the damage is explicitly small.
	calmRe = family(
		`\b(use|using|print\w*\s+(on|at|from|to))\s+the\s+(one|other)\b|\bthe\s+one\s+(downstairs|upstairs|in\s+the)\b|\bother\s+printer\b|\bwe\s+print\s+(downstairs|upstairs)\b|\bweichen\b|\bwir\s+drucken\s+solange\b|\bimprimons\b|\bimprimimos\s+en\b|\busiamo\s+quella\b|\bestamos\s+usando\b|\bprinten\s+zolang\b|\bworkaround\b`,
		`\b(use|using|print\w*|send\w*|work\w*|booking)\b[^.!?\n]{0,50}\binstead\b|\b(for\s+now|meanwhile|in\s+the\s+meantime|workaround|still\s+(works?|come\s+in|reach|open|use|work|can)|can\s+still|nothing\s+(else\s+)?(is\s+)?(broken|affected)|annoying\s+but|not\s+critical|production\s+is\s+(fine|not\s+affected)|existing\s+services\s+are\s+running|other\s+(machines|domains|colleagues)\s+(work|can|are\s+fine)|everyone\s+else\s+(works|is\s+fine)|works\s+fine|is\s+fine|are\s+fine|looks\s+normal|nothing\s+else\s+seems|rest\s+of\s+the\s+floor\s+is\s+fine|as\s+far\s+as\s+we\s+can\s+(see|tell)|i\s+can\s+(still\s+)?work|can\s+still\s+work|not\s+causing\s+problems)\b`,
		`\b(solange|vorerst|weiterhin|in\s+der\s+zwischenzeit|lauft\s+(sonst\s+)?normal|ansonsten|geht\s+alles|arbeite\s+(solange|mit)|danach\s+lauft)\b`,
		`\b(en\s+attendant|pour\s+l'instant|n'est\s+pas\s+touchee|le\s+reste\s+fonctionne|continuent|je\s+peux\s+travailler)\b`,
		`\b(mientras\s+tanto|de\s+momento|va\s+bien|el\s+resto\s+funciona|todo\s+lo\s+demas|igualmente|puedo\s+trabajar|luego\s+funciona)\b`,
		`\b(nel\s+frattempo|il\s+resto\s+funziona|comunque|riesco\s+a\s+lavorare|ora\s+funziona|funziona\s+tutto)\b`,
		`\b(enquanto\s+isso|o\s+resto\s+funciona|ainda\s+conseguem|da\s+para\s+trabalhar|agora\s+esta\s+funcionando|funciona\s+normalmente)\b`,
		`\b(zolang|de\s+rest\s+werkt|werkt\s+nog\s+wel|kan\s+wel\s+werken|nu\s+werkt|werkt\s+gewoon)\b`,
	)

	// strongLowRe: feedback, thanks, ideas and cosmetic slips: low even
	// when something small is broken.
	strongLowRe = family(
		`\b(not\s+a\s+big\s+deal|just\s+(fyi|a\s+suggestion|so\s+you\s+know|wanted\s+to\s+say)|fyi|for\s+the\s+future|keep\s+it\s+up|feature\s+request|would\s+be\s+(nice|great|useful)|just\s+a\s+suggestion|thanks?\s+(to\s+\w+\s+)?for\s+(fixing|sorting|the\s+quick|your\s+quick)|typo|cosmetic|unprofessional|great\s+service)\b`,
		`\b(tippfehler|kein\s+drama|nur\s+zur\s+info|vielen\s+dank\s+an|schnelle\s+hilfe)\b`,
		`\b(juste\s+une\s+idee|ce\s+serait\s+bien|un\s+grand\s+merci|faute\s+de\s+frappe)\b`,
		`\b(error\s+tipografico|no\s+es\s+importante|muchas\s+gracias\s+a)\b`,
		`\b(solo\s+un\s+suggerimento|sarebbe\s+utile|grazie\s+a\s+\w+\s+per|refuso)\b`,
		`\b(so\s+uma\s+sugestao|seria\s+legal|obrigad[oa]\s+(a|ao|a)\s+\w+\s+pela|erro\s+de\s+digitacao)\b`,
		`\b(gewoon\s+een\s+idee|zou\s+fijn\s+zijn|tikfout)\b`,
	)

	// concernRe: the requester fears something went wrong.
	concernRe = family(
		`\b(worr(y|ied)|should\s+(i|we)\s+(worry|block|be\s+worried|shut)|did\s+i\s+do\s+something\s+wrong|is\s+(that|it)\s+(safe|dangerous))\b`,
		`\b(sorgen|bedenklich)\b|\binquiet\w*\b|\bpreocup\w*\b|\bpreoccup\w*\b|\bzorgen\b`,
	)

	// lowRe: nothing is hurting anyone: a question, a request, feedback, a
	// plan, or the requester says there is no hurry.
	softLowRe = family(
		`\b(not\s+urgent|no\s+rush|no\s+hurry|nothing\s+urgent|whenever|when\s+you\s+(have|get)\s+(a\s+moment|time|a\s+chance)|just\s+(asking|planning)|out\s+of\s+curiosity|planning|budget|in\s+advance|next\s+(week|month|quarter|year))\b`,
		`^\s*(how|what|which|where|when|who|is|are|can|could|do|does|would|should|any)\b[^.!\n]*\?|\bhow\s+(do|can|should)\s+(i|we)\b|\bis\s+(it|there)\s+(possible|a)\b|\b(do|would|can)\s+you\s+(recommend|support|have|help\s+us\s+roll)|\bwhat'?s\s+the\s+(best|recommended|simplest)\b|\bwhat\s+would\s+it\s+cost\b|\bquick\s+question\b`,
		`\b(could|can)\s+you\s+(please\s+)?(send|create|set\s+up|add|order|swap|remove|enrol|change|set)\b|\bplease\s+(create|remove|change|add|order|set\s+up|swap)\b|\bwe'?d\s+like\b|\bwould\s+like\b|\bstarting\s+(on|in)\b|\bbefore\s+then\b|\bnew\s+(starter|colleague|hire)\b|\bleft\s+us\b`,
		`\b(eilt\s+nicht|keine\s+eile|nicht\s+dringend|kein\s+drama|nur\s+zur\s+info|vielen\s+dank|danke\s+an|wie\s+(richte|stelle|kann|andere|mache)|kann\s+ich|welche\s+\w+\s+empfehlen|empfehlen\s+sie|konnten\s+sie|bitte\s+(legen|richten|schicken)|ab\s+nachst\w*|fangt\s+\w+\s+an|am\s+\d+\.\s+\w+\s+fangt|gross\s+darf)\b`,
		`\b(rien\s+d'urgent|pas\s+urgent|juste\s+une\s+idee|ce\s+serait\s+bien|un\s+grand\s+merci|merci\s+beaucoup|comment\s+(ajouter|imprimer|installer|configurer|changer|faire)|recommandez|pourriez-vous|quel\s+serait|merci\s+de\s+lui|arrive\s+le|pas\s+urgent)\b`,
		`\b(no\s+es\s+urgente|no\s+hay\s+prisa|no\s+es\s+importante|solo\s+para\s+que|muchas\s+gracias|como\s+(configuro|hago|cambio|instalo)|recomiendan|cuanto\s+costaria|me\s+pueden|le\s+pueden|se\s+incorpora)\b`,
		`\b(non\s+e\s+urgente|nessuna\s+fretta|solo\s+un\s+suggerimento|sarebbe\s+utile|grazie\s+(mille|a)|come\s+(faccio|imposto|installo|cambio)|consigliate|quanto\s+costa|potreste|arriva\s+una\s+nuova)\b`,
		`\b(nao\s+e\s+urgente|sem\s+pressa|so\s+uma\s+sugestao|seria\s+legal|obrigad[oa]\s+(a|ao|pela)|como\s+(faco|configuro|crio|troco|instalo)|recomendam|quanto\s+custa|podem\s+(me\s+enviar|criar)|comeca\s+no\s+dia)\b`,
		`\b(geen\s+haast|niet\s+dringend|gewoon\s+een\s+idee|zou\s+fijn\s+zijn|bedankt|hoe\s+(stel|zorg|kan|wijzig|installeer|doe)|raden\s+jullie|kunnen\s+jullie|begint\s+er)\b`,
	)
)

// severity is what the rules read about a ticket's urgency: the priority
// and the evidence for it, as labels for the notes.
type severity struct {
	priority tickets.Priority
	reasons  []string
	// severe is why the ticket is high ("outage for many", ...), empty
	// when it is not.
	severe []string
}

// notBrokenRe are phrases with a word of trouble that describe none: a
// question about where something is, something deleted on purpose.
var notBrokenRe = family(`\b(can'?t|couldn'?t|cannot|unable\s+to)\s+find\b|\b(of|the|my|our|your)\s+deleted\s+\w+|\bif\s+something\s+(breaks|goes\s+wrong)\b`)

// slowRe: degraded, not broken: slowness, lateness, warnings.
var slowRe = family(`\b(slow(er|ly)?|langsam|lent[eo]?s?|traag|choppy|laggy|delayed|late|intermittent\w*|warnings?|takes\s+\d+)\b`)

// readSeverity reads the priority from a folded text (subject and body).
func readSeverity(text string) severity {
	has := func(p patterns) bool { return p.MatchString(text) }
	text = notBrokenRe.ReplaceAllString(text, " ")
	down, many, harm, shared, blocked := has(downRe), has(manyRe), has(businessRe), has(sharedRe), has(blockedRe)
	lost := has(lostRe)
	broken := has(brokenRe) || lost || has(concernRe)
	// hard: broken beyond slowness.
	hard := down || lost || brokenRe.MatchString(slowRe.ReplaceAllString(text, " "))
	calm, strongLow, softLow := has(calmRe), has(strongLowRe), has(softLowRe)
	var sv severity
	if has(incidentRe) || has(strangeLoginRe) && !has(failedOnlyRe) {
		sv.severe = append(sv.severe, "security incident")
	}
	backupFail, noCopy, dying := has(backupFailRe), has(noCopyRe), has(dyingRe)
	if lost && has(lotsRe) || backupFail && (noCopy || dying) || dying && noCopy || has(restoreFailRe) && lost {
		sv.severe = append(sv.severe, "data lost or at risk")
	}
	if has(massChargeRe) && has(manyPayersRe) {
		sv.severe = append(sv.severe, "customers charged wrongly at scale")
	}
	switch {
	case down && (many || shared || harm) && !calm:
		sv.severe = append(sv.severe, "outage")
	case harm && hard && !calm:
		sv.severe = append(sv.severe, "the business is hit")
	case many && (blocked || down && !calm):
		sv.severe = append(sv.severe, "many people blocked")
	case blocked && (down || broken) && !calm:
		sv.severe = append(sv.severe, "people cannot work")
	}
	if has(todayRe) && has(stakesRe) && (broken || down) {
		sv.severe = append(sv.severe, "a deadline of today")
	}
	for _, r := range []struct {
		on    bool
		label string
	}{{down, "something is down"}, {many, "many affected"}, {harm || shared, "a service the business runs on"}, {blocked, "people blocked"},
		{broken, "something is broken"}, {calm, "a workaround or limited harm"}, {strongLow || softLow, "a question, request, plan or feedback"}} {
		if r.on {
			sv.reasons = append(sv.reasons, r.label)
		}
	}
	switch {
	case len(sv.severe) > 0:
		sv.priority = tickets.PriorityHigh
	case strings.TrimSpace(text) == "":
		// Nothing to read: a person has to look.
		sv.priority = tickets.PriorityMedium
	case strongLow:
		sv.priority = tickets.PriorityLow
	case broken || down || blocked:
		sv.priority = tickets.PriorityMedium
	default:
		sv.priority = tickets.PriorityLow
	}
	return sv
}
