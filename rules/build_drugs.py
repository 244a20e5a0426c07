"""Build `rules/drugs.tsv` (surface name -> substance, brand, ATC, forms, routes) from the BDPM snapshot.

Sources (read at build time only, never at run time):
- BDPM (ANSM open data, Licence Ouverte 2.0), snapshot 2026: `CIS_bdpm.txt` (products) joined on the CIS
  code with `CIS_COMPO_bdpm.txt` (substances; per link number the therapeutic fraction FT is preferred
  over the active substance SA, so "DL-LYSINE (ACÉTYLSALICYLATE DE)" reads "acide acétylsalicylique").
- ATC codes: EDS-NLP's `resources/drugs.json` (ATC -> brand names in capitals and substances in lower case).

Conventions:
- substance: the DCI in lower-case French with accents, salt words removed when the DCI stands without
  them ("chlorhydrate de tramadol" -> "tramadol", "lévothyroxine sodique" -> "lévothyroxine",
  "amoxicilline trihydratée" -> "amoxicilline"); mineral salts that are the substance itself are kept
  ("chlorure de potassium", "carbonate de calcium"). Combinations: substances sorted, joined " + ".
- brand: the product name's words before the dosage or the comma, title case ("Kardegic"), with a short
  accent table for common brands (BRAND_DISPLAY). Generics ("ABACAVIR ARROW") give the substance only.
- strict=1: the name is also a common French word (or very short): it counts only with posology or in a
  treatment section, and must be written with a capital.
- Homeopathy is excluded.
- Fixed combinations (products of 2 or 3 substances with an ATC): the substances written one after the other
  in any order ("amoxicilline + acide clavulanique", "fluticasone/formotérol", "sulfaméthoxazole-triméthoprime")
  are a surface of their own, so the combination is one entry with the combination ATC (J01CR02), never
  split into its parts; the ATC is the one most products of that composition carry.

Rebuild: /work/venv/bin/python -m rules.build_drugs [--bdpm /work/shared/data/bdpm]
"""
from __future__ import annotations

import argparse
import collections
import csv
import gzip
import itertools
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from extractor.clinical.lexicon import fold, key_of  # noqa: E402

SNAPSHOT = "BDPM snapshot 2026 (latest authorisations 2025)"

SALT_PREFIXES = [
    "chlorhydrate", "dichlorhydrate", "monochlorhydrate", "bromhydrate", "sulfate", "hémisulfate", "maléate",
    "hydrogénomaléate", "bésilate", "mésilate", "tosilate", "fumarate", "hémifumarate", "tartrate", "hémitartrate",
    "bitartrate", "succinate", "citrate", "dihydrogénocitrate", "acétate", "propionate", "dipropionate", "valérate",
    "phosphate", "phosphate disodique", "phosphate sodique", "nitrate", "lactate", "gluconate", "camsilate",
    "embonate", "pamoate", "acétonide", "oxalate", "chlorure", "bromure", "iodure", "furoate",
    "butyrate", "acéponate", "succinate sodique", "étabonate", "décanoate", "énanthate", "palmitate",
    "hyclate", "hydrobromure", "méthylsulfate", "napadisilate", "xinafoate", "magnésium", "sodium",
    "potassium", "calcium", "arginine", "lysine", "trométamol", "érbumine", "tert-butylamine",
]
SALT_SUFFIX_WORDS = {
    "sodique", "disodique", "monosodique", "trisodique", "potassique", "dipotassique", "calcique", "magnésique",
    "magnésien", "anhydre", "monohydraté", "monohydratée", "dihydraté", "dihydratée", "trihydraté", "trihydratée",
    "hémihydraté", "hémihydratée", "sesquihydraté", "sesquihydratée", "tétrahydraté", "hydraté", "hydratée",
    "pentahydraté", "heptahydraté", "hexahydraté", "base", "micronisé", "micronisée", "chlorhydrate", "sulfate",
    "maléate", "bésilate", "mésilate", "fumarate", "tartrate", "succinate", "citrate", "acétate", "hyclate",
    "arginine", "lysine", "érbumine", "trométamol", "monohydrate", "dihydrate", "amorphe", "cristallisé",
}
# Cations / anions that are the substance itself when alone ("chlorure de potassium").
MINERALS = {"sodium", "potassium", "calcium", "magnésium", "fer", "zinc", "lithium", "fluor", "ammonium", "aluminium",
            "cuivre", "manganèse", "sélénium", "strontium", "argent", "baryum"}
GENERIC_LABS = {
    "arrow", "sandoz", "biogaran", "mylan", "viatris", "teva", "zentiva", "eg", "cristers", "zydus", "accord",
    "almus", "sun", "ranbaxy", "krka", "qualimed", "evolugen", "ratiopharm", "pfizer", "medisol", "panpharma",
    "aguettant", "fresenius", "kabi", "hospira", "renaudin", "lavoisier", "bbraun", "b.braun", "substipharm",
    "actavis", "alter", "bluefish", "isomed", "pharmaki", "torrent", "upsa", "conseil", "gé", "ge",
    "labs", "lab", "sanofi", "winthrop", "reddy's", "reddys", "hcs", "ethypharm", "macure",
}
BRAND_DISPLAY = {
    "KARDEGIC": "Kardégic", "LEVOTHYROX": "Levothyrox", "TEMESTA": "Témesta", "SERESTA": "Séresta",
    "DEPAKINE": "Dépakine", "DEPAKOTE": "Dépakote", "TEGRETOL": "Tégrétol", "CELECTOL": "Célectol",
    "DETENSIEL": "Détensiel", "LASILIX": "Lasilix", "PREVISCAN": "Préviscan", "INEXIUM": "Inexium",
    "EFFERALGAN": "Efferalgan", "STILNOX": "Stilnox", "SPECIAFOLDINE": "Spéciafoldine", "TRANSIPEG": "Transipeg",
    "DIAMICRON": "Diamicron", "LOXEN": "Loxen", "SEROPLEX": "Séroplex", "DEROXAT": "Déroxat",
    "PERMIXON": "Permixon", "TAHOR": "Tahor", "CRESTOR": "Crestor", "ELISOR": "Élisor",
    "HEMIGOXINE": "Hémigoxine", "DIFFU K": "Diffu-K", "DIFFU-K": "Diffu-K", "ATARAX": "Atarax",
    "LEXOMIL": "Lexomil", "XANAX": "Xanax", "MOPRAL": "Mopral", "EUPANTOL": "Eupantol", "FORLAX": "Forlax",
    "DUPHALAC": "Duphalac", "CORDARONE": "Cordarone", "CARDENSIEL": "Cardensiel", "KREDEX": "Kredex",
    "AMLOR": "Amlor", "TRIATEC": "Triatec", "COVERSYL": "Coversyl", "APROVEL": "Aprovel", "COZAAR": "Cozaar",
    "ELIQUIS": "Eliquis", "XARELTO": "Xarelto", "PRADAXA": "Pradaxa", "PLAVIX": "Plavix", "BRILIQUE": "Brilique",
    "LOVENOX": "Lovenox", "INNOHEP": "Innohep", "STAGID": "Stagid", "GLUCOPHAGE": "Glucophage",
    "JANUVIA": "Januvia", "LANTUS": "Lantus", "NOVORAPID": "NovoRapid", "HUMALOG": "Humalog",
    "DOLIPRANE": "Doliprane", "DAFALGAN": "Dafalgan", "SPASFON": "Spasfon", "MYOLASTAN": "Myolastan",
    "ZYLORIC": "Zyloric", "COLCHIMAX": "Colchimax", "ADENURIC": "Adénuric", "SECTRAL": "Sectral",
    "TENORMINE": "Ténormine", "AVLOCARDYL": "Avlocardyl", "LERCAN": "Lercan", "ZANIDIP": "Zanidip",
    "NEBILOX": "Nébilox", "TEMERIT": "Témérit", "SEROQUEL": "Seroquel", "ZYPREXA": "Zyprexa",
    "RISPERDAL": "Risperdal", "HALDOL": "Haldol", "LAROXYL": "Laroxyl", "EFFEXOR": "Effexor",
    "IMOVANE": "Imovane", "NOCTAMIDE": "Noctamide", "VENTOLINE": "Ventoline",
    "SERETIDE": "Sérétide", "SYMBICORT": "Symbicort", "SPIRIVA": "Spiriva", "SINGULAIR": "Singulair",
    "AERIUS": "Aérius", "XYZALL": "Xyzall", "CORTANCYL": "Cortancyl", "SOLUPRED": "Solupred",
    "MEDROL": "Médrol", "DIPROSONE": "Diprosone", "NOVATREX": "Novatrex", "IMUREL": "Imurel",
    "METOJECT": "Métoject", "PLAQUENIL": "Plaquenil", "APRANAX": "Apranax", "BIPROFENID": "Bi-Profénid",
    "PROFENID": "Profénid", "VOLTARENE": "Voltarène", "ADVIL": "Advil", "NUROFEN": "Nurofen",
    "IXPRIM": "Ixprim", "TOPALGIC": "Topalgic", "CONTRAMAL": "Contramal", "SKENAN": "Skenan",
    "ACTISKENAN": "Actiskenan", "OXYCONTIN": "Oxycontin", "DUROGESIC": "Durogésic", "LYRICA": "Lyrica",
    "NEURONTIN": "Neurontin", "KEPPRA": "Keppra", "LAMICTAL": "Lamictal", "TRILEPTAL": "Trileptal",
    "MODOPAR": "Modopar", "SINEMET": "Sinemet", "ARICEPT": "Aricept", "EBIXA": "Ebixa",
    "UVEDOSE": "Uvédose", "ZYMAD": "Zymad", "CACIT": "Cacit", "OROCAL": "Orocal", "TARDYFERON": "Tardyféron",
    "FUMAFER": "Fumafer", "AUGMENTIN": "Augmentin", "CLAMOXYL": "Clamoxyl", "ORELOX": "Orelox",
    "ROCEPHINE": "Rocéphine", "OFLOCET": "Oflocet", "CIFLOX": "Ciflox", "BACTRIM": "Bactrim",
    "FLAGYL": "Flagyl", "ZITHROMAX": "Zithromax", "PYOSTACINE": "Pyostacine", "MONURIL": "Monuril",
    "XATRAL": "Xatral", "OMIX": "Omix", "JOSIR": "Josir", "AVODART": "Avodart", "CHIBRO-PROSCAR": "Chibro-Proscar",
    "ALDACTONE": "Aldactone", "ESIDREX": "Esidrex", "FLUDEX": "Fludex", "BURINEX": "Burinex",
    "SELOKEN": "Séloken", "LOPRESSOR": "Lopressor", "TILDIEM": "Tildiem", "ISOPTINE": "Isoptine",
    "RISORDAN": "Risordan", "NATISPRAY": "Natispray", "CORVASAL": "Corvasal", "ADANCOR": "Adancor",
    "PROCORALAN": "Procoralan", "ENTRESTO": "Entresto", "JARDIANCE": "Jardiance", "FORXIGA": "Forxiga",
    "OZEMPIC": "Ozempic", "TRULICITY": "Trulicity", "VICTOZA": "Victoza", "AMAREL": "Amarel",
    "NOVONORM": "Novonorm", "COUMADINE": "Coumadine", "SINTROM": "Sintrom", "MINISINTROM": "Minisintrom",
}
STOP_EXTRA = {
    "active", "vital", "ideal", "actif", "force", "forte", "plus", "max", "bien", "calme", "confort", "nuit", "jour",
    "soleil", "sommeil", "mer", "rhume", "toux", "gorge", "nez", "peau", "sang", "coeur", "foie", "rein", "test",
    "gel", "creme", "solution", "spray", "stop", "zen", "ultra", "enfant", "adulte", "bebe", "femme", "homme",
    "vitamine", "magnesium", "fer", "zinc", "calcium", "lait", "eau", "huile", "sel", "sucre", "miel", "sirop",
    "duo", "flash", "rapide", "lp", "retard", "long", "ordonnance", "traitement", "patient", "normal", "regime",
    "controle", "mars", "mai", "juin", "juillet", "aout", "avril", "service", "docteur", "madame", "monsieur",
}


def clean_substance(raw: str) -> str:
    """BDPM substance (capitals) -> the common DCI in lower case with accents."""
    s = raw.strip().lower()
    s = re.sub(r"\s+pour préparations? homéopathiques?.*$", "", s)
    s = re.sub(r"\s*\((?:sel|base|forme|exprimé|equivalent|équivalent|sous forme)[^)]*\)", "", s)
    # "dl-lysine (acétylsalicylate de)" style: "X (Y DE)" means "Y de X"
    m = re.match(r"^(.+?) \((.+?) de\)$", s)
    if m:
        s = f"{m.group(2)} de {m.group(1)}"
    s = re.sub(r"\s*\([^)]*\)", "", s)
    for pre in sorted(SALT_PREFIXES, key=len, reverse=True):
        m = re.match(rf"^{re.escape(pre)} d[e'’]\s*(.+)$", s)
        if m:
            rest = m.group(1).strip()
            if rest.split()[0] not in MINERALS:
                s = rest
            break
    words = s.split()
    while len(words) > 1 and words[-1] in SALT_SUFFIX_WORDS:
        words.pop()
    s = " ".join(words)
    # A polymer's grade is not another drug: "macrogol 4000", "macrogol 3350" are macrogol.
    s = re.sub(r"(?<=[a-zà-ÿ])\s+\d{3,}$", "", s)
    s = re.sub(r"\s+", " ", s).strip(" ,")
    return s


def brand_of(name: str) -> str:
    """Product name -> brand: words before the first dosage number or the comma."""
    head = name.split(",")[0]
    words = []
    for w in head.split():
        if re.match(r"^\d", w) or w.lower() in {"pour", "enfants", "enfant", "adultes", "adulte", "nourrissons",
                                                   "nourrisson", "lp", "gé", "ge", "sans", "avec", "à", "a", "en"}:
            break
        words.append(w)
    return " ".join(words).strip(" -/")


def load_atc(path: Path) -> dict[str, str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    out: dict[str, str] = {}
    for atc, names in data.items():
        if len(atc) != 7:
            continue
        for n in names:
            k = key_of(n)
            if k and k not in out:
                out[k] = atc
    return out


def common_words(edsnlp_dir: Path) -> set[str]:
    words = set(STOP_EXTRA)
    try:
        from spacy.lang.fr.stop_words import STOP_WORDS
        words |= {fold(w) for w in STOP_WORDS}
    except ImportError:
        pass
    with gzip.open(edsnlp_dir / "verbs.csv.gz", "rt", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            words.add(fold(row["term"]))
    with gzip.open(edsnlp_dir / "cim10.csv.gz", "rt", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            words |= set(re.findall(r"[a-z]+", fold(row["long"])))
    return words


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bdpm", type=Path, default=Path("/work/shared/data/bdpm"))
    ap.add_argument("--edsnlp", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=HERE / "drugs.tsv")
    args = ap.parse_args(argv)
    if args.edsnlp is None:
        import edsnlp
        args.edsnlp = Path(edsnlp.__file__).parent / "resources"
    atc_of = load_atc(args.edsnlp / "drugs.json")
    common = common_words(args.edsnlp)

    compo: dict[str, dict[str, dict[str, str]]] = collections.defaultdict(dict)  # cis -> link -> nature -> name
    with (args.bdpm / "CIS_COMPO_bdpm.txt").open(encoding="utf-8") as fh:
        for line in fh:
            f = line.rstrip("\n").split("\t")
            if len(f) < 8:
                continue
            cis, name, nature, link = f[0], f[3], f[6].strip(), f[7].strip()
            compo[cis].setdefault(link, {}).setdefault(nature, name)

    # surface key -> aggregated info
    agg: dict[str, dict] = {}
    combos: dict[tuple[str, ...], dict] = {}  # substances of a fixed combination -> ATC, forms, routes

    def add(surface: str, kind: str, substance: str, brand: str | None, form: str, routes: list[str], atc: str | None):
        k = key_of(surface)
        if not k or len(k) < 3:
            return
        e = agg.setdefault(k, {"surface": surface, "type": kind, "subs": collections.Counter(), "brand": brand,
                               "forms": collections.Counter(), "routes": collections.Counter(), "atc": collections.Counter()})
        e["subs"][substance] += 1
        e["forms"][form] += 1
        for r in routes:
            e["routes"][r] += 1
        if atc:
            e["atc"][atc] += 1
        if kind == "substance" and e["type"] == "brand":
            e["type"] = "substance"

    with (args.bdpm / "CIS_bdpm.txt").open(encoding="utf-8") as fh:
        for line in fh:
            f = line.rstrip("\n").split("\t")
            if len(f) < 6:
                continue
            cis, name, form, routes, procedure = f[0], f[1], f[2].strip(), f[3], f[5]
            if "homéo" in procedure.lower() or "homeo" in procedure.lower() or "granules" in form:
                continue
            links = compo.get(cis)
            if not links:
                continue
            subs = sorted({clean_substance(n.get("FT") or n.get("SA") or next(iter(n.values()))) for n in links.values()})
            subs = [s for s in subs if s]
            if not subs or any("homéopathique" in s for s in subs):
                continue
            substance = " + ".join(subs)
            route_list = [r.strip() for r in routes.split(";") if r.strip()]
            brand = brand_of(name)
            bkey = key_of(brand)
            atc = atc_of.get(bkey) or (atc_of.get(key_of(subs[0])) if len(subs) == 1 else None)
            if 2 <= len(subs) <= 3 and atc:
                c = combos.setdefault(tuple(subs), {"atc": collections.Counter(), "form": form, "routes": route_list})
                c["atc"][atc] += 1
            for s in subs:  # each substance is a surface of its own
                add(s, "substance", s, None, form, route_list, atc_of.get(key_of(s)) or (atc if len(subs) == 1 else None))
            first_sub_tokens = key_of(subs[0]).split()
            btoks = bkey.split()
            if not btoks:
                continue
            if btoks[: len(first_sub_tokens)] == first_sub_tokens or btoks[0] in {key_of(s).split()[0] for s in subs}:
                continue  # a generic: "ABACAVIR ARROW" is the substance, already added
            display = BRAND_DISPLAY.get(brand.upper()) or " ".join(w.capitalize() if not w.isupper() or len(w) > 1 else w
                                                                   for w in brand.lower().split())
            add(brand, "brand", substance, display, form, route_list, atc)
            first = brand.split()[0]
            if first != brand and len(first) >= 4:
                add(first, "brand", substance,
                    BRAND_DISPLAY.get(first.upper()) or first.capitalize(), form, route_list, atc_of.get(key_of(first)) or atc)

    for subs, c in sorted(combos.items()):
        atc = c["atc"].most_common(1)[0][0]
        for perm in itertools.permutations(subs):
            if key_of(" ".join(perm)) not in agg:
                add(" + ".join(perm), "substance", " + ".join(subs), None, c["form"], c["routes"], atc)

    rows = []
    for k, e in agg.items():
        substance = e["subs"].most_common(1)[0][0]
        if e["type"] == "brand":
            words = k.split()
            strict = int(len(k) <= 4 or (len(words) == 1 and words[0] in common))
        else:
            strict = 0
        if e["type"] == "brand" and any(x in GENERIC_LABS for x in k.split()[1:]) and len(k.split()) > 1:
            continue
        rows.append({
            "surface": e["surface"] if e["type"] == "brand" else substance if key_of(substance) == k else e["surface"],
            "type": e["type"], "substance": substance, "brand": e["brand"] or "",
            "atc": e["atc"].most_common(1)[0][0] if e["atc"] else "",
            "forms": ";".join(f for f, _ in e["forms"].most_common(3)),
            "routes": ";".join(r for r, _ in e["routes"].most_common(3)),
            "strict": str(strict),
        })
    rows.sort(key=lambda r: (r["type"], key_of(r["surface"])))
    cols = ["surface", "type", "substance", "brand", "atc", "forms", "routes", "strict"]
    with args.out.open("w", encoding="utf-8", newline="") as fh:
        fh.write(f"# Derived by rules/build_drugs.py from the {SNAPSHOT} (ANSM, Licence Ouverte 2.0),\n")
        fh.write("# CIS_bdpm.txt joined with CIS_COMPO_bdpm.txt (FT preferred over SA), ATC from EDS-NLP resources/drugs.json.\n")
        fh.write("# Rebuild: /work/venv/bin/python -m rules.build_drugs --bdpm <bdpm folder>. Do not edit by hand.\n")
        w = csv.DictWriter(fh, fieldnames=cols, delimiter="\t", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    print(f"{len(rows)} surfaces -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
