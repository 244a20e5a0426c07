"""Synthetic DMP dossiers with their ground truth (issue 3).

`make_corpus(out, dossiers, seed, split, scan_ratio)` writes `out/<id>/` (documents only) and
`out/<id>.gold.json` beside it, and returns the `GoldDossier` records. Same arguments, same bytes.

How a dossier is made: a clinical truth is drawn from the vocabulary of the dossier's split
(conditions, surgeries, family history, allergies, treatments with a timeline of dose changes, stops
and replacements); documents are written from that truth at their dates (hospital reports, letters,
consultations, operative reports, prescriptions, lab results, administrative papers), each statement
recording which document made it; documents are laid out and rendered as text PDFs or scans.

Gold conventions (see samples/README.md): history labels are the full French names of
`vocab/conditions.json` with their CIM-10 code; allergens are the `substance` of `vocab/allergens.json`;
treatments are the DCI without salt with the ATC of `vocab/drugs.json`, `brand` when the brand was
written, `dose` and `frequency` (canonical, from `phrasings.posology.freq`) from the most recent
document that states the drug, and `status` stopped when a later document stopped it.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
import unicodedata
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

import numpy as np

from models.gold import (
    GoldAllergy,
    GoldDistractor,
    GoldDocument,
    GoldDossier,
    GoldHistory,
    GoldIdentity,
    GoldPage,
    GoldTreatment,
)
from samples import render
from samples.vocab import items, phrasing, section_titles

SplitArg = Literal["dev", "heldout", "all"]

MONTHS = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre"]
MONTHS_ABBR = ["janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc."]
FIRST_F = ["Hélène", "Maryvonne", "Odile", "Solange", "Ghislaine", "Annick", "Bernadette", "Josiane", "Claudine", "Lucienne", "Mireille", "Nadège"]
FIRST_M = ["Gwenaël", "Armand", "Lucien", "Firmin", "Roland", "Yvon", "Gérard", "Marcel", "Aimé", "Norbert", "Hervé", "Léopold"]
SYL = ["ker", "mor", "van", "del", "bra", "gou", "lan", "vi", "ro", "ba", "duc", "tel", "sa", "quin", "rel", "fon", "pi", "gal", "mar", "zen"]
TOWNS = [("Villemarne", "77810"), ("Saint-Aubrac", "12470"), ("Montclaris", "34980"), ("Plouvénec", "29870"),
         ("Rochebrune-les-Bains", "05190"), ("Valdoise-le-Haut", "95870"), ("Lanvaudan-sur-Mer", "56240")]
STREETS = ["rue des Tilleuls", "avenue du Général Ferrié", "boulevard Pasteur", "rue de la Fontaine", "place du Marché", "chemin des Vignes"]
SERVICES = ["Service de Cardiologie", "Service de Médecine Interne", "Service de Pneumologie", "Service de Gériatrie",
            "Service de Néphrologie", "Service de Chirurgie Viscérale", "Service de Neurologie"]
RELATIVES = [("Père", "le père"), ("Mère", "la mère"), ("Frère", "le frère"), ("Sœur", "la sœur")]
FILLER_EXAM = ["Patient(e) conscient(e), orienté(e), eupnéique en air ambiant.", "Auscultation cardio-pulmonaire sans particularité.",
               "Abdomen souple, dépressible et indolore.", "Pas d'œdème des membres inférieurs, pas de turgescence jugulaire.", "Mollets souples.",
               "TA 138/82 mmHg, FC 72/min, SpO2 97 %, apyrétique.", "Examen neurologique sans déficit sensitivo-moteur."]
# What real letters add around the history (issue 10, learned from real case reports): symptoms, signs and
# lab or imaging findings in the examination (vocab phrasings "history_findings"), differentials ruled out
# ("history_eliminated"), and the history stated by adjectives.
ADJECTIVES = {"hypertension artérielle": "hypertendu(e)", "diabète de type 2": "diabétique", "asthme": "asthmatique",
              "obésité": "obèse", "épilepsie": "épileptique", "insuffisance cardiaque": "insuffisant(e) cardiaque",
              "insuffisance rénale chronique": "insuffisant(e) rénal(e) chronique"}
FILLER_EVOL = ["L'évolution a été favorable.", "Les suites ont été simples.", "Le patient a pu regagner son domicile.",
               "Une surveillance clinique et biologique a été réalisée.", "Bonne tolérance clinique."]
FILLER_HDM = ["Les symptômes évoluent depuis une dizaine de jours, d'aggravation progressive.", "Pas de notion de voyage récent ni de contage.",
              "Le médecin traitant a adressé le/la patient(e) aux urgences devant la persistance des symptômes.",
              "Aux urgences, les constantes étaient stables et un premier bilan biologique a été prélevé.",
              "Le/la patient(e) décrit une asthénie et une diminution des apports alimentaires.", "Pas de fièvre rapportée à domicile."]
FILLER_PARA = ["ECG : rythme sinusal régulier, pas de trouble de la repolarisation.", "Radiographie thoracique : pas de foyer, pas d'épanchement pleural.",
               "Échographie cardiaque : FEVG conservée à 58 %, pas de valvulopathie significative.",
               "Scanner thoracique : absence d'anomalie parenchymateuse évolutive.", "Échographie abdominale : foie de taille normale, voies biliaires fines.",
               "Doppler veineux des membres inférieurs normal.", "Bandelette urinaire négative."]
MOTIFS = ["dyspnée d'effort", "douleur thoracique", "altération de l'état général", "chute à domicile", "malaise", "œdèmes des membres inférieurs", "fièvre"]


# ---------------------------------------------------------------- small helpers

def strip_accents(s: str) -> str:
    """What a hurried typist writes: accents dropped, œ as "oe"; other signs (µ, °) stay as they are."""
    bare = "".join(c for c in unicodedata.normalize("NFD", s) if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", bare.replace("œ", "oe").replace("Œ", "OE"))


def elide_de(s: str) -> str:
    """'de BPCO' / 'd'embolie pulmonaire'."""
    return ("d'" if s[:1].lower() in "aeiouyhéèêâîô" else "de ") + s


def fmt_date(d: date, style: int) -> str:
    if style == 0:
        return d.strftime("%d/%m/%Y")
    if style == 1:
        return f"{d.day} {MONTHS[d.month - 1]} {d.year}"
    if style == 2:
        return d.isoformat()
    if style == 3:
        return f"Le {d.day} {MONTHS_ABBR[d.month - 1]} {d.year}"
    return d.strftime("%d.%m.%Y")


def sexed(text: str, sex: str) -> str:
    """Resolve the '(e)' and 'Il/elle' forms of templates for the patient's sex."""
    text = text.replace("Il/elle", "Il" if sex == "M" else "Elle")
    return text.replace("(e)", "" if sex == "M" else "e")


def dossier_rng(seed: int, dossier_id: str) -> random.Random:
    return random.Random(f"synthese:{seed}:{dossier_id}")


# ---------------------------------------------------------------- truth

@dataclass
class Med:
    item: dict
    as_brand: bool
    dose: str
    pos: dict

    def name(self) -> str:
        return self.item["brand"] if self.as_brand and self.item.get("brand") else self.item["drug"]


@dataclass
class Event:
    kind: str  # "dose", "stop", "replace"
    med: Med
    new: Med | None = None
    new_dose: str | None = None


@dataclass
class Profile:
    """Forces dossier-level phenomena (the shipped samples use it; `make_corpus` draws it at random)."""

    empty: bool = False
    admin_only: bool = False
    duplicate: bool = False
    rescan: bool = False
    undated: bool = False
    unreadable: bool = False
    contradiction: bool = False  # allergy in one document, "pas d'allergie connue" in another
    event: str | None = None  # "dose" | "stop" | "replace"
    history: str = "known"  # known | none_known | unknown
    allergy: str = "known"
    treatment: str = "known"
    n_clinical: int | None = None
    first_type: str | None = None  # type of the first clinical document (compte_rendu, courrier, consultation)
    renders: dict[int, str] = field(default_factory=dict)  # clinical doc index -> text|scanned_pdf|jpeg|png|tiff|mixed_pdf
    rotations: dict[int, int] = field(default_factory=dict)  # clinical doc index -> rotation of its first scanned page


@dataclass
class Doc:
    doc_type: str
    slug: str
    date: date | None
    spec: render.DocSpec | None = None
    stated: set = field(default_factory=set)
    undated: bool = False
    allergy_none: bool = False  # this document writes "no known allergy" (the contradiction)


class Dossier:
    """Builds one dossier: truth, documents, gold."""

    def __init__(self, dossier_id: str, seed: int, split: str, scan_ratio: float, profile: Profile):
        self.id = dossier_id
        self.seed = seed
        self.split = split
        self.scan_ratio = scan_ratio
        self.p = profile
        self.rng = dossier_rng(seed, dossier_id + ":" + split)
        self.np = np.random.default_rng(self.rng.getrandbits(63))
        self.sex = self.rng.choice("MF")
        first = self.rng.choice(FIRST_M if self.sex == "M" else FIRST_F)
        last = "".join(self.rng.choice(SYL) for _ in range(self.rng.randint(2, 3))).capitalize()
        self.first, self.last = first, last
        self.birth = date(self.rng.randint(1935, 1975), self.rng.randint(1, 12), self.rng.randint(1, 28))
        self.ipp = f"{self.rng.randint(10, 99)}{self.rng.randint(0, 999999):06d}"
        self.phenomena: list[str] = []
        self.distractors: list[GoldDistractor] = []
        self.history: dict[str, dict] = {}  # label -> {item, year, kind, rel...}
        self.allergies: dict[str, dict] = {}
        self.med_docs: dict[str, list] = {}
        self.docs: list[Doc] = []
        self.seq = 0
        self.courses: dict[str, str] = {}  # drugs of in-stay and course prose -> ATC, for the gold
        self.family: list[dict] = []
        self.allergy_list: list[dict] = []
        self.meds: list[Med] = []
        self.spare_drugs: list[dict] = []
        self.event: Event | None = None
        self.ev_idx: int | None = None
        # A separate stream for the real-writing phenomena, so adding them left every other draw as it was.
        self.rng_real = dossier_rng(seed, dossier_id + ":" + split + ":real-writing")

    # ---- vocabulary access restricted to the split
    def ph(self, kind: str) -> str:
        return sexed(self.rng.choice(phrasing(kind, self.split))["t"], self.sex)

    def title(self, kind: str) -> str:
        return self.rng.choice(section_titles(kind, self.split))

    # ---- truth
    def draw_truth(self) -> None:
        r = self.rng
        conds = items("conditions", self.split)
        med_items = [c for c in conds if c["kind"] == "medical"]
        surg_items = [c for c in conds if c["kind"] == "surgical"]
        if self.p.history == "known":
            for c in r.sample(med_items, r.randint(1, 4)):
                year = r.choice([None, None, r.randint(1995, 2018)])
                self.history[c["label"]] = {"item": c, "year": year, "kind": "medical"}
            for c in r.sample(surg_items, r.randint(0, 2)):
                self.history[c["label"]] = {"item": c, "year": r.randint(1970, 2018), "kind": "surgical"}
        self.family: list[dict] = []
        if self.p.history == "known" and r.random() < 0.6:
            for c in r.sample(med_items, r.randint(1, 2)):
                rel = r.choice(RELATIVES)
                self.family.append({"item": c, "rel": rel, "age": r.randint(45, 80)})
        self.allergy_list: list[dict] = []
        if self.p.allergy == "known" or self.p.contradiction:
            reactions = items("reactions", self.split)
            for a in r.sample(items("allergens", self.split), r.randint(1, 2)):
                kind = r.choice(a["kinds"])
                reacts = [x for x in reactions if x["kind"] == kind]
                reaction = r.choice(reacts)["reaction"] if r.random() < 0.7 else None
                self.allergy_list.append({"item": a, "kind": kind, "reaction": reaction, "surface": r.choice(a["surfaces"])})
        allergen_names = {a["item"]["substance"] for a in self.allergy_list}
        self.meds: list[Med] = []
        drugs = [d for d in items("drugs", self.split) if d["drug"] not in allergen_names]
        r.shuffle(drugs)
        self.spare_drugs = drugs
        if self.p.treatment == "known":
            for d in [self.spare_drugs.pop() for _ in range(r.randint(2, 5))]:
                self.meds.append(self.new_med(d))
        self.event: Event | None = None
        if self.p.treatment == "known" and self.p.event:
            m = r.choice(self.meds)
            if self.p.event == "dose" and len(m.item["doses"]) > 1:
                self.event = Event("dose", m, new_dose=r.choice([x for x in m.item["doses"] if x != m.dose]))
            elif self.p.event == "replace":
                self.event = Event("replace", m, new=self.new_med(self.spare_drugs.pop()))
            else:
                self.event = Event("stop", m)

    def new_med(self, d: dict) -> Med:
        r = self.rng
        return Med(d, r.random() < 0.6, r.choice(d["doses"]), r.choice(phrasing("posology", self.split)))

    def meds_at(self, i_doc: int, event_idx: int | None, after: bool) -> list[Med]:
        """The medication list as known at a document (before/after the event document)."""
        meds = list(self.meds)
        ev = self.event
        if ev is None or event_idx is None or i_doc < event_idx or (i_doc == event_idx and not after):
            return meds
        if ev.kind == "dose":
            return [Med(m.item, m.as_brand, ev.new_dose, m.pos) if m is ev.med else m for m in meds]
        if ev.kind == "stop":
            return [m for m in meds if m is not ev.med]
        return [ev.new if m is ev.med else m for m in meds]

    # ---- statements (each records the document that states it)
    def state_med(self, doc: Doc, m: Med, dose: str, status: str, brand_written: bool) -> None:
        self.seq += 1
        doc.stated.add(("t", m.item["drug"], dose, m.pos["freq"], m.item["brand"] if brand_written else None, status, self.seq))

    def med_line(self, doc: Doc, m: Med, style: str = "line") -> str:
        as_brand = m.as_brand if self.rng.random() < 0.75 else not m.as_brand
        name = m.item["brand"] if as_brand else m.item["drug"]
        tpl = self.ph("treatment_line") if style == "line" else "{name} {dose} {pos}"
        line = tpl.format(name=name, NAME=name.upper(), dose=m.dose, pos=m.pos["t"])
        self.state_med(doc, m, m.dose, "active", as_brand)
        return line

    def hist_surface(self, doc: Doc, label: str) -> str:
        h = self.history[label]
        s = self.rng.choice(h["item"]["surfaces"])
        doc.stated.add(("h", label))
        if h["year"] and self.rng.random() < 0.8:
            return self.ph("history_item").format(s=s, year=h["year"])
        return s

    def family_lines(self, doc: Doc) -> list[str]:
        out = []
        for f in self.family:
            rel, rel_poss = f["rel"]
            s = self.rng.choice(f["item"]["surfaces"])
            out.append(self.ph("family").format(rel=rel, rel_lower=rel.lower(), rel_poss=rel_poss, s=s, age=f["age"]))
            doc.stated.add(("f", f["item"]["label"]))
        return out

    def allergy_lines(self, doc: Doc, none: bool = False) -> list[str]:
        if none or doc.allergy_none or not self.allergy_list:
            doc.stated.add(("none", "allergy"))
            return [self.ph("allergy_none")]
        out = []
        for a in self.allergy_list:
            prep, _bare = a["surface"]
            tpl = self.ph("allergy" if a["kind"] == "allergy" else "intolerance")
            if a["reaction"] is None:
                tpl = re.sub(r"\s*\(\{reaction\}\)|\s*[:,] \{reaction\}", "", tpl)
            out.append(tpl.format(a=prep, a_upper=prep.upper(), reaction=a["reaction"] or ""))
            doc.stated.add(("a", a["item"]["substance"]))
        return out

    def distract(self, block: str, label: str, reason: str) -> None:
        if not any(d.block == block and d.label == label and d.reason == reason for d in self.distractors):
            self.distractors.append(GoldDistractor(block=block, label=label, reason=reason))

    def negated_history_line(self) -> str | None:
        pool = [c for c in items("conditions", self.split) if c["kind"] == "medical" and c["label"] not in self.history
                and c["label"] not in {f["item"]["label"] for f in self.family}]
        if not pool:
            return None
        c = self.rng.choice(pool)
        self.distract("history", c["label"], "negated")
        return self.ph("history_negated").format(short=c["short"], de_short=elide_de(c["short"])).capitalize()

    def hypothesis_line(self) -> str | None:
        pool = [c for c in items("conditions", self.split) if c["kind"] == "medical" and c["label"] not in self.history
                and c["label"] not in {f["item"]["label"] for f in self.family}]
        if not pool:
            return None
        c = self.rng.choice(pool)
        self.distract("history", c["label"], "hypothetical")
        t = self.ph("history_hypothesis").format(short=c["short"], de_short=elide_de(c["short"]))
        return t[0].upper() + t[1:]

    def allergy_distractor_line(self) -> str | None:
        taken = {a["item"]["substance"] for a in self.allergy_list} | {m.item["drug"] for m in self.meds}
        pool = [a for a in items("allergens", self.split) if a["substance"] not in taken]
        if not pool:
            return None
        a = self.rng.choice(pool)
        if self.rng_real.random() < 0.2:
            # De-labelled by the allergist: shown as refuted, never an active allergy.
            self.distract("allergy", a["substance"], "refuted")
            return f"Allergie {a['surfaces'][0][0]} non confirmée : tests cutanés négatifs."
        if self.rng.random() < 0.6:
            self.distract("allergy", a["substance"], "negated")
            return self.ph("allergy_negated").format(a=a["surfaces"][0][0])
        self.distract("allergy", a["substance"], "hypothetical")
        return self.ph("allergy_hypothesis").format(a=a["surfaces"][0][0])

    def discussed_line(self) -> str | None:
        allergens = {a["item"]["substance"] for a in self.allergy_list}
        pool = [d for d in self.spare_drugs if d["drug"] not in allergens]
        if not pool:
            return None
        d = self.rng.choice(pool)
        self.spare_drugs.remove(d)
        self.distract("treatment", d["drug"], "discussed")
        name = d["brand"] if self.rng.random() < 0.5 else d["drug"]
        return self.ph("discussed").format(name=name, de_name=elide_de(name), **{"class": d["class"]})

    def past_line(self) -> str | None:
        allergens = {a["item"]["substance"] for a in self.allergy_list}
        pool = [p for p in items("drugs", self.split, "past_only") if p["drug"] not in allergens]
        if not pool:
            return None
        p = self.rng.choice(pool)
        self.distract("treatment", p["drug"], "past")
        return self.ph("past").format(s=p["surface"], year=self.rng.randint(2005, 2017))

    def history_distractor_sentence(self, kind: str, reason: str) -> str | None:
        """A sentence of the vocab phrasings `kind` ("history_findings": a symptom or finding of the stay,
        "history_eliminated": a differential ruled out), recorded as a distractor: its label must never become
        a history entry."""
        pool = [p for p in phrasing(kind, self.split) if p["label"] not in self.history]
        if not pool:
            return None
        p = self.rng_real.choice(pool)
        self.distract("history", p["label"], reason)
        return p["t"]

    def adjective_sentence(self, doc: Doc) -> str | None:
        """The history as clinicians often state it: "Patient diabétique et hypertendu"."""
        adjs = [(lab, ADJECTIVES[lab]) for lab in self.history if lab in ADJECTIVES and self.history[lab]["kind"] == "medical"]
        if not adjs:
            return None
        chosen = self.rng_real.sample(adjs, min(len(adjs), 2))
        for lab, _ in chosen:
            doc.stated.add(("h", lab))
        words = " et ".join(a for _, a in chosen)
        return f"Patient(e) {words} connu(e)."

    def treatment_prose_lines(self, doc: Doc, meds: list[Med]) -> list[str]:
        """Treatments as letters write them in sentences (issue 11): a current drug under a take cue (sometimes
        with its class), an in-stay drug of the last stay, a finished course with its duration. The last two
        are stopped treatments of the gold. Drawn from a generator of its own, so other phenomena keep their draws."""
        r = random.Random(f"{self.seed}-{self.id}-{doc.date}-prose")
        out = []
        allergens = {a["item"]["substance"] for a in self.allergy_list}
        taken = {m.item["drug"] for m in meds} | allergens
        if meds and r.random() < 0.5:
            m = r.choice(meds)
            tpl = r.choice(phrasing("treatment_taken_prose", self.split))["t"]
            name = m.name()
            out.append(tpl.format(name=name, Name=name[0].upper() + name[1:], dose=m.dose, pos=m.pos["t"],
                                  year=r.randint(2008, 2018), **{"class": m.item["class"]}))
            self.state_med(doc, m, m.dose, "active", m.as_brand and m.item.get("brand") is not None)
        for kind in ("in_stay", "course"):
            pool = [c for c in items("drugs", self.split, "prose_courses") if c["kind"] == kind and c["drug"] not in taken]
            if not pool or r.random() >= 0.35:
                continue
            c = r.choice(pool)
            as_brand = c["brand"] is not None and r.random() < 0.5
            name = c["brand"] if as_brand else c["drug"]
            tpl = r.choice(phrasing(f"{kind}_prose", self.split))["t"]
            out.append(tpl.format(name=name, dose=c["dose"], days=c.get("days", 0)))
            self.seq += 1
            doc.stated.add(("t", c["drug"], c["dose"], None, c["brand"] if as_brand else None, "stopped", self.seq))
            self.courses[c["drug"]] = c["atc"]
        return out

    def lab_prose(self) -> str:
        lab = self.rng.choice(phrasing("labs", self.split))
        self.distract("treatment", lab["label"], "lab")
        return f"Biologie : {lab['prose']}, créatinine 88 µmol/L, CRP < 5 mg/L."

    def event_line(self, doc: Doc) -> str:
        ev = self.event
        m = ev.med
        name = m.name()
        du = ("du " + name) if m.as_brand else elide_de(name)
        le = ("le " + name) if m.as_brand else ("l'" + name if name[0] in "aeiouéè" else "le " + name)
        if ev.kind == "dose":
            self.state_med(doc, m, ev.new_dose, "active", m.as_brand)
            t = self.ph("dose_change").format(name=name, du_name=du, dose=ev.new_dose, pos=m.pos["t"])
            return t[0].upper() + t[1:]
        self.state_med(doc, m, m.dose, "stopped", m.as_brand)
        if ev.kind == "stop":
            t = self.ph("stop").format(name=name, du_name=du, le_name=le)
        else:
            n = ev.new
            new = f"{n.name()} {n.dose} {n.pos['t']}"
            self.state_med(doc, n, n.dose, "active", n.as_brand)
            t = self.ph("replace").format(name=name, du_name=du, new=new)
        return t[0].upper() + t[1:]

    # ---- documents
    def people(self):
        r = self.rng
        town, cp = r.choice(TOWNS)
        doctor = f"Dr {r.choice(FIRST_F + FIRST_M)} {''.join(r.choice(SYL) for _ in range(2)).capitalize()}"
        return town, cp, doctor

    def identity_block(self, d: Doc) -> tuple:
        r = self.rng
        civ = "M." if self.sex == "M" else "Mme"
        born = "Né le" if self.sex == "M" else "Née le"
        left = [f"Patient : {civ} {self.last.upper()} {self.first}", f"{born} {fmt_date(self.birth, r.choice([0, 1]))}", f"IPP : {self.ipp}"]
        town, _, gp = self.people()
        right = ["Médecin traitant :", gp, town]
        return ("twocol", left, right)

    def dateline_items(self, d: Doc, town: str) -> list[tuple]:
        """The document's date line as body items: none for an undated document."""
        dl = self.dateline(d, town)
        return [("line", dl)] if dl else []

    def dateline(self, d: Doc, town: str) -> str | None:
        if d.date is None or d.undated:
            return None
        style = self.rng.randint(0, 4)
        s = fmt_date(d.date, style)
        if style == 3:
            return s
        return self.rng.choice([f"{town}, le {s}", f"Date : {s}", f"Fait le {s}"])

    def header_footer(self, org: str, d: Doc) -> tuple[str, str]:
        civ = "M." if self.sex == "M" else "Mme"
        hdr = f"{org} - {civ} {self.last.upper()} {self.first} - IPP {self.ipp}"
        foot = self.rng.choice(["Page {page}/{pages} - Document confidentiel - " + org, org + " - page {page} sur {pages}"])
        return hdr, foot

    def hospital(self) -> tuple[list[str], str, str]:
        r = self.rng
        town, cp, chief = self.people()
        name = r.choice([f"Centre Hospitalier de {town}", f"CHU de {town}", f"Clinique des {r.choice(['Tilleuls', 'Acacias', 'Ormeaux'])}",
                         f"Hôpital privé du Val de {town}"])
        service = r.choice(SERVICES)
        lh = [name, service, f"{r.randint(1, 90)} {r.choice(STREETS)} - {cp} {town}", f"Secrétariat : 0{r.randint(1, 5)} {r.randint(10, 99)} {r.randint(10, 99)} {r.randint(10, 99)} {r.randint(10, 99)}", f"Chef de service : {chief}"]
        return lh, name, town

    def gp(self) -> tuple[list[str], str, str]:
        r = self.rng
        town, cp, doc = self.people()
        lh = [doc.replace("Dr", "Docteur"), r.choice(["Médecine générale", "Médecin généraliste - DU de gériatrie"]), f"{r.randint(1, 90)} {r.choice(STREETS)}", f"{cp} {town}",
              f"RPPS : 10{r.randint(100000000, 999999999)}"]
        return lh, doc, town

    def build_compte_rendu(self, d: Doc, i: int, ev_idx: int | None) -> None:
        r = self.rng
        lh, org, town = self.hospital()
        hdr, foot = self.header_footer(org, d)
        body = [self.identity_block(d), *self.dateline_items(d, town)]
        body.append(("title", r.choice(["COMPTE RENDU D'HOSPITALISATION", "Compte rendu d'hospitalisation", "CR D'HOSPITALISATION"])))
        body.append(("line", f"Motif d'hospitalisation : {r.choice(MOTIFS)}"))
        body += self.history_section(d, full=True)
        if self.p.allergy != "unknown" or self.allergy_list:
            body += self.allergy_section(d)
        body += [("heading", self.title("lifestyle")), ("line", r.choice(["Tabac : sevré depuis 2010 (30 PA). Alcool : occasionnel.", "Vit seul(e) à domicile, autonome.", "Retraité(e), marié(e), 2 enfants. Pas de tabac."]).replace("(e)", "" if self.sex == "M" else "e"))]
        before = self.meds_at(i, ev_idx, after=False)
        after = self.meds_at(i, ev_idx, after=True)
        if self.p.treatment != "unknown":
            body.append(("heading", self.title("treatment_entry")))
            body += [("line", self.med_line(d, m)) for m in before] or [("line", self.none_treatment(d))]
        hdm = [f"Patient(e) de {d.date.year - self.birth.year if d.date else 70} ans hospitalisé(e) pour {r.choice(MOTIFS)}."]
        hdm += [x.replace("le/la", "le" if self.sex == "M" else "la").replace("Le/la", "Le" if self.sex == "M" else "La") for x in r.sample(FILLER_HDM, 4)]
        if r.random() < 0.6:
            hyp = self.hypothesis_line()
            if hyp:
                hdm.append(hyp)
        body += [("heading", self.title("hdm")), ("para", sexed(" ".join(hdm), self.sex))]
        exam = r.sample(FILLER_EXAM, 4)
        neg = self.negated_history_line() if r.random() < 0.5 else None
        if self.rng_real.random() < 0.5:
            adj = self.adjective_sentence(d)
            if adj:
                hdm.insert(1, adj)
                body[-1] = ("para", sexed(" ".join(hdm), self.sex))
        real = [x for x in (self.history_distractor_sentence("history_findings", "finding") if self.rng_real.random() < 0.5 else None,
                            self.history_distractor_sentence("history_eliminated", "eliminated") if self.rng_real.random() < 0.4 else None) if x]
        body += [("heading", self.title("exam")), ("para", sexed(" ".join(exam + ([neg] if neg else []) + real), self.sex))]
        body += [("heading", "Examens complémentaires")] + [("line", x) for x in r.sample(FILLER_PARA, r.randint(3, 5))]
        if r.random() < 0.6:
            body.append(("para", self.lab_prose()))
        evo = r.sample(FILLER_EVOL, 2)
        if ev_idx == i and self.event:
            evo.append(self.event_line(d))
        if r.random() < 0.4:
            dl_ = self.discussed_line()
            if dl_:
                evo.append(dl_)
        body += [("heading", self.title("evolution")), ("para", sexed(" ".join(evo), self.sex))]
        body += [("heading", self.title("conclusion")), ("para", "Évolution favorable. Retour à domicile. Suivi par le médecin traitant.")]
        if self.p.treatment != "unknown":
            body.append(("heading", self.title("treatment_exit")))
            body += [("line", self.med_line(d, m)) for m in after] or [("line", self.none_treatment(d))]
        body += [("space",), ("line", f"{self.people()[2]}, praticien hospitalier"), ("line", "Signé électroniquement")]
        d.spec = render.DocSpec(hdr, foot, lh, body)

    def none_treatment(self, d: Doc) -> str:
        d.stated.add(("none", "treatment"))
        return self.ph("treatment_none")

    def history_section(self, d: Doc, full: bool) -> list[tuple]:
        r = self.rng
        out: list[tuple] = []
        if self.p.history == "unknown":
            return out
        if self.p.history == "none_known" or not self.history:
            d.stated.add(("none", "history"))
            # One draw: inline ("ATCD : néant") or a heading followed by the statement. Never a bare
            # heading: the gold says none_known only where the absence is written.
            if r.random() < 0.5:
                return [("line", f"{self.title('history').rstrip(' :')} : {self.ph('history_none')}")]
            return [("heading", self.title("history")), ("line", self.ph("history_none"))]
        med = [k for k, h in self.history.items() if h["kind"] == "medical"]
        surg = [k for k, h in self.history.items() if h["kind"] == "surgical"]
        if not full:
            med = r.sample(med, max(1, len(med) - r.randint(0, 1))) if med else []
        if r.random() < 0.35:  # inline, telegraphic
            parts = [self.hist_surface(d, k) for k in med + surg]
            out.append(("line", f"{self.title('history').rstrip(' :')} : {', '.join(parts)}"))
        else:
            out.append(("heading", self.title("history")))
            out += [("line", "- " + self.hist_surface(d, k)) for k in med]
            if surg:
                out.append(("heading", self.title("history_surgical")))
                out += [("line", "- " + self.hist_surface(d, k)) for k in surg]
        if self.family and (full or r.random() < 0.5):
            out.append(("heading", self.title("history_family")))
            out += [("line", ln) for ln in self.family_lines(d)]
        return out

    def allergy_section(self, d: Doc, force_none: bool = False) -> list[tuple]:
        r = self.rng
        lines = self.allergy_lines(d, none=force_none)
        extra = self.allergy_distractor_line() if r.random() < 0.35 else None
        if extra:
            lines.append(extra)
        if len(lines) == 1 and r.random() < 0.5:
            return [("line", f"{self.title('allergy').rstrip(' :')} : {lines[0]}")]
        return [("heading", self.title("allergy"))] + [("line", ln) for ln in lines]

    def build_courrier(self, d: Doc, i: int, ev_idx: int | None) -> None:
        r = self.rng
        if r.random() < 0.5:
            lh, org, town = self.hospital()
        else:
            lh, org, town = self.gp()
        hdr, foot = self.header_footer(org, d)
        body = [self.identity_block(d), *self.dateline_items(d, town)]
        body.append(("title", r.choice(["Courrier au médecin traitant", "LETTRE DE LIAISON", "Courrier de consultation"])))
        civ = "Monsieur" if self.sex == "M" else "Madame"
        paras = [r.choice(["Cher confrère,", "Chère consœur, cher confrère,", "Mon cher confrère,"]),
                 f"Je revois ce jour en consultation {civ} {self.last.upper()}, que vous connaissez bien."]
        if self.p.history == "known" and self.history:
            keys = list(self.history)
            paras.append(self.ph("history_prose").format(list=", ".join(self.hist_surface(d, k) for k in keys)))
        elif self.p.history == "none_known":
            d.stated.add(("none", "history"))
            paras.append(self.ph("history_none"))
        if self.p.allergy != "unknown" or self.allergy_list:
            paras.append(" ".join(self.allergy_lines(d)))
        meds = self.meds_at(i, ev_idx, after=True)
        if self.p.treatment != "unknown":
            if meds:
                paras.append(self.ph("treatment_prose").format(list=", ".join(self.med_line(d, m, "prose") for m in meds)))
            else:
                paras.append(self.none_treatment(d))
        if ev_idx == i and self.event:
            paras.append(self.event_line(d))
        paras += self.treatment_prose_lines(d, meds)
        if r.random() < 0.4:
            x = self.past_line()
            if x:
                paras.append(x)
        paras.append("Je vous remercie de votre confiance et reste à votre disposition. Bien confraternellement.")
        body += [("para", sexed(p, self.sex)) for p in paras]
        body += [("space",), ("line", self.people()[2])]
        d.spec = render.DocSpec(hdr, foot, lh, body)

    def build_consultation(self, d: Doc, i: int, ev_idx: int | None) -> None:
        r = self.rng
        lh, org, town = self.hospital()
        hdr, foot = self.header_footer(org, d)
        body = [self.identity_block(d), *self.dateline_items(d, town)]
        body.append(("title", r.choice(["COMPTE RENDU DE CONSULTATION", "Consultation de suivi", "CONSULTATION SPECIALISEE"])))
        body += self.history_section(d, full=False)
        if self.p.allergy != "unknown" or self.allergy_list:
            body += self.allergy_section(d)
        meds = self.meds_at(i, ev_idx, after=False)
        if self.p.treatment != "unknown":
            body.append(("heading", self.title("treatment_current")))
            body += [("line", self.med_line(d, m)) for m in meds] or [("line", self.none_treatment(d))]
        concl = ["Patient(e) stable sur le plan clinique."]
        if ev_idx == i and self.event:
            concl.append(self.event_line(d))
        if r.random() < 0.4:
            x = self.past_line()
            if x:
                concl.append(x)
        if r.random() < 0.4:
            x = self.negated_history_line()
            if x:
                concl.append(x)
        body += [("heading", self.title("conclusion")), ("para", sexed(" ".join(concl), self.sex)), ("space",), ("line", self.people()[2])]
        if r.random() < 0.3:  # telegraphic notes typed without accents
            body = [(el[0], strip_accents(el[1])) if el[0] in ("line", "para", "heading") else el for el in body]
        d.spec = render.DocSpec(hdr, foot, lh, body)

    def build_operatoire(self, d: Doc, i: int, ev_idx: int | None) -> None:
        r = self.rng
        lh, org, town = self.hospital()
        hdr, foot = self.header_footer(org, d)
        surg = [k for k, h in self.history.items() if h["kind"] == "surgical" and h.get("op")]
        label = surg[0]
        h = self.history[label]
        d.stated.add(("h", label))
        body = [self.identity_block(d), *self.dateline_items(d, town)]
        body += [("title", "COMPTE RENDU OPERATOIRE"), ("line", f"Intervention : {r.choice(h['item']['surfaces'])}"),
                 ("line", f"Opérateur : {self.people()[2]}   Anesthésie : générale"),
                 ("heading", "Indication"), ("para", "Indication posée en consultation, patient(e) informé(e) des risques."),
                 ("heading", "Description"), ("para", "Installation en décubitus dorsal. Antisepsie cutanée. Intervention menée sans difficulté particulière. Hémostase soigneuse. Fermeture plan par plan."),
                 ("heading", "Suites"), ("para", "Surveillance habituelle. Sortie prévue à J2 si les suites sont simples.")]
        if self.allergy_list or self.p.allergy != "unknown":
            body += self.allergy_section(d)
        body += [("space",), ("line", self.people()[2])]
        body = [(el[0], sexed(el[1], self.sex)) if el[0] in ("para",) else el for el in body]
        d.spec = render.DocSpec(hdr, foot, lh, body)

    def build_ordonnance(self, d: Doc, i: int, ev_idx: int | None) -> None:
        r = self.rng
        lh, org, town = self.gp()
        hdr, foot = self.header_footer(org, d)
        civ = "M." if self.sex == "M" else "Mme"
        body = self.dateline_items(d, town)
        body += [("line", f"{civ} {self.last.upper()} {self.first}"), ("title", self.title("ordonnance"))]
        for m in self.meds_at(i, ev_idx, after=True):
            body.append(("line", self.med_line(d, m, r.choice(["line", "plain"]))))
        body += [("line", self.rng.choice(phrasing("duration", self.split))["t"]), ("space",), ("line", lh[0])]
        d.spec = render.DocSpec(hdr, foot, lh, body)

    def build_biologie(self, d: Doc, i: int, ev_idx: int | None) -> None:
        r = self.rng
        town, cp, bio = self.people()
        org = f"Laboratoire de biologie médicale {r.choice(['BioVal', 'Synlab Ouest', 'Labomer', 'Cerballiance Est'])}"
        lh = [org, f"Site de {town} - {cp}", f"Biologiste responsable : {bio}"]
        hdr, foot = self.header_footer(org, d)
        rows = [["Examen", "Résultat", "Unités", "Valeurs de référence"], ["Hémoglobine", "13,2", "g/dL", "12,0 - 16,0"],
                ["Leucocytes", "7,1", "G/L", "4,0 - 10,0"], ["Plaquettes", "245", "G/L", "150 - 400"], ["Sodium", "139", "mmol/L", "135 - 145"],
                ["Créatinine", "92", "µmol/L", "59 - 104"], ["DFG (CKD-EPI)", "68", "mL/min/1,73m2", "> 90"]]
        for lab in r.sample(phrasing("labs", self.split), 2):
            rows.append(lab["row"])
            self.distract("treatment", lab["label"], "lab")
        body = [self.identity_block(d)]
        if d.date:
            body.append(("line", f"Prélèvement du {fmt_date(d.date, r.choice([0, 2, 4]))} à 08:{r.randint(10, 59)}"))
        body += [("title", "COMPTE RENDU D'ANALYSES"), ("table", rows), ("line", "Résultats validés par le biologiste.")]
        d.spec = render.DocSpec(hdr, foot, lh, body)

    def build_administratif(self, d: Doc, i: int, ev_idx: int | None) -> None:
        r = self.rng
        lh, org, town = self.hospital()
        hdr, foot = self.header_footer(org, d)
        civ = "Monsieur" if self.sex == "M" else "Madame"
        body = self.dateline_items(d, town)
        if d.slug.startswith("convocation"):
            rdv = (d.date or date(2023, 1, 1)) + timedelta(days=r.randint(7, 40))
            body += [("title", "CONVOCATION"), ("para", f"{civ} {self.last.upper()} {self.first}, vous êtes attendu(e) le {fmt_date(rdv, 1)} à {r.randint(8, 16)}h{r.choice(['00', '15', '30', '45'])} au secrétariat du {lh[1]}."),
                     ("para", "Merci de vous munir de votre carte Vitale, de votre pièce d'identité et de votre carte de mutuelle."),
                     ("para", "En cas d'empêchement, merci de prévenir le secrétariat au moins 48 heures à l'avance.")]
        else:
            body += [("title", "CERTIFICAT DE PRÉSENCE"), ("para", f"Je soussigné(e), certifie que {civ} {self.last.upper()} {self.first} s'est présenté(e) ce jour à la consultation du {lh[1]}."),
                     ("para", "Certificat établi à la demande de l'intéressé(e) et remis en main propre pour servir et valoir ce que de droit.")]
        body += [("space",), ("line", "Le secrétariat médical")]
        body = [(el[0], el[1].replace("(e)", "" if self.sex == "M" else "e")) if el[0] == "para" else el for el in body]
        d.spec = render.DocSpec(hdr, foot, lh, body)

    # ---- the dossier
    def plan(self) -> None:
        r = self.rng
        p = self.p
        if p.empty:
            self.phenomena.append("empty")
            return
        self.draw_truth()
        n_admin = r.randint(1, 2) if p.admin_only else r.choice([0, 0, 1, 1, 2])
        admin = [Doc("administratif", r.choice(["convocation", "certificat"]), None) for _ in range(n_admin)]
        clinical: list[Doc] = []
        if not p.admin_only:
            n = p.n_clinical or r.randint(2, 5)
            types = ["compte_rendu", "courrier", "consultation"]
            clinical.append(Doc(p.first_type or r.choice(types), "", None))
            pool = ["compte_rendu", "courrier", "consultation", "ordonnance", "biologie", "consultation", "courrier"]
            if self.p.treatment != "known":
                pool = [t for t in pool if t != "ordonnance"]
            surg = [k for k, h in self.history.items() if h["kind"] == "surgical"]
            for _ in range(n - 1):
                t = r.choice(pool + (["operatoire"] if surg else []))
                clinical.append(Doc(t, "", None))
            if p.contradiction and len(clinical) < 2:
                clinical.append(Doc("consultation", "", None))
        else:
            self.phenomena.append("administrative_only")
            # nothing medical is said: every block stays unknown
            self.history.clear(); self.allergy_list.clear(); self.meds.clear(); self.family.clear(); self.event = None
        # dates: clinical documents in time order
        start = date(2019, 1, 1) + timedelta(days=r.randint(0, 700))
        t = start
        for d in clinical:
            t = t + timedelta(days=r.randint(20, 300))
            d.date = t
        for d in admin:
            d.date = start + timedelta(days=r.randint(0, 1200))
        # an operative report is the surgery it describes: its date becomes the surgery's date
        for d in clinical:
            if d.doc_type == "operatoire":
                free = [k for k, h in self.history.items() if h["kind"] == "surgical" and not h.get("op")]
                if free:
                    self.history[free[0]].update(op=True, year=d.date.isoformat())
                else:
                    d.doc_type = "courrier"
        # event: in a later document able to say it
        self.ev_idx = None
        if self.event:
            cands = [i for i, d in enumerate(clinical) if i > 0 and d.doc_type in ("compte_rendu", "courrier", "consultation")]
            if cands:
                self.ev_idx = r.choice(cands)
                self.phenomena.append({"dose": "dose_change", "stop": "stopped", "replace": "replaced"}[self.event.kind])
            else:
                self.event = None
        # prescriptions after no treatments make no sense
        for d in clinical:
            if d.doc_type == "ordonnance" and not self.meds_at(clinical.index(d), self.ev_idx, True):
                d.doc_type = "courrier"
        if p.undated and clinical:
            # an undated letter: written at the last state, so what it lists never contradicts the dated ones
            cands = [i for i, d in enumerate(clinical) if d.doc_type in ("courrier", "consultation") and i != self.ev_idx and (self.ev_idx is None or i > self.ev_idx)]
            if not cands:
                clinical.append(Doc("courrier", "", clinical[-1].date + timedelta(days=30)))
                cands = [len(clinical) - 1]
            clinical[cands[-1]].undated = True
            self.phenomena.append("undated")
        if p.contradiction and clinical and self.allergy_list:
            # the first document states the allergy; a later one writes "pas d'allergie connue"
            cands = [d for d in clinical[1:] if d.doc_type in ("compte_rendu", "courrier", "consultation")]
            if not cands:
                clinical.append(Doc("consultation", "", clinical[-1].date + timedelta(days=60)))
                cands = [clinical[-1]]
            cands[-1].allergy_none = True
            self.phenomena.append("contradiction")
        self.clinical = clinical
        for i, d in enumerate(clinical):
            getattr(self, f"build_{d.doc_type}")(d, i, self.ev_idx)
            if d.undated:
                d.date = None
        for d in admin:
            self.build_administratif(d, 0, None)
        self.docs = clinical + admin
        slugs = {"compte_rendu": "compte_rendu_hospitalisation", "courrier": "courrier", "consultation": "consultation",
                 "operatoire": "compte_rendu_operatoire", "ordonnance": "ordonnance", "biologie": "resultats_biologie"}
        for d in clinical:
            d.slug = slugs[d.doc_type]


    # ---- rendering
    def name_for(self, slug: str, ext: str) -> str:
        while True:
            name = f"{slug}_{self.rng.getrandbits(24):06x}.{ext}"
            if name not in self.used_names:
                self.used_names.add(name)
                return name

    def scan_params(self, rotation: int | None) -> render.ScanParams:
        r = self.rng
        if rotation is None:
            rotation = r.choices([0, 180, 90, 270], [0.84, 0.08, 0.04, 0.04])[0]
        return render.ScanParams(
            rotation=rotation, skew=round(r.uniform(-3.0, 3.0), 2) if r.random() < 0.8 else 0.0,
            noise=round(r.uniform(2.0, 8.0), 1), blur=r.choice([0.0, 0.0, 0.5, 0.8]),
            low=r.randint(0, 50), high=r.randint(205, 255), specks=r.choice([0.0, 0.0002, 0.0006]))

    def write_document(self, folder: Path, idx: int, d: Doc, mode: str | None, forced_rotation: int | None = None,
                       rescan_of: str | None = None) -> tuple[GoldDocument, bytes]:
        """Render one document in the given mode; returns its gold record and its bytes (already written)."""
        r = self.rng
        drawn = render.layout(d.spec)
        texts = [render.page_text(p) for p in drawn]
        if mode is None:
            if r.random() < self.scan_ratio:
                mode = r.choice(["scanned_pdf", "tiff", "mixed_pdf", "scanned_pdf"] if len(drawn) > 1 else ["scanned_pdf", "jpeg", "png", "scanned_pdf"])
            else:
                mode = "text"
        if mode in ("jpeg", "png") and len(drawn) > 1:
            mode = "scanned_pdf"
        if mode == "mixed_pdf" and len(drawn) < 2:
            mode = "scanned_pdf"
        pdf = render.text_pdf(drawn)
        gpages = [GoldPage(number=i + 1, text=t) for i, t in enumerate(texts)]
        if mode == "text":
            data, kind, ext = pdf, "text_pdf", "pdf"
        else:
            dpi = self.dpi if self.dpi else r.choice([200, 200, 300])
            scanned = list(range(len(drawn)))
            if mode == "mixed_pdf":
                k = r.randint(1, len(drawn) - 1)
                scanned = sorted(r.sample(range(len(drawn)), k))
            images = render.rasterise(pdf, dpi)
            out: list = []
            for i in range(len(drawn)):
                if i in scanned:
                    sp = self.scan_params(forced_rotation if (forced_rotation is not None and i == scanned[0]) else None)
                    img = render.degrade(images[i], sp, self.np)
                    gpages[i] = GoldPage(number=i + 1, text=texts[i], scanned=True, rotation=sp.rotation, skew=sp.skew)
                    out.append((img, None))
                else:
                    out.append((None, drawn[i]))
            quality = r.randint(40, 75)
            if mode in ("scanned_pdf", "mixed_pdf"):
                data, kind, ext = render.image_pdf(out, dpi, quality), mode, "pdf"
            elif mode == "jpeg":
                data, kind, ext = render.encode(out[0][0], "jpeg", quality), "image", "jpg"
            elif mode == "png":
                data, kind, ext = render.encode(out[0][0].point(lambda v: 255 if v > 150 else 0).convert("1"), "png"), "image", "png"
            else:  # tiff: a fax-like bilevel multi-page TIFF
                bil = [im.point(lambda v: 255 if v > 150 else 0).convert("1") for im, _ in out]
                data, kind, ext = render.tiff(bil, dpi), "image", "tif"
        name = self.name_for(d.slug + ("_scan" if rescan_of and r.random() < 0.5 else ""), ext)
        (folder / name).write_bytes(data)
        d_iso = d.date.isoformat() if d.date else None
        g = GoldDocument(path=name, kind=kind, doc_type=d.doc_type, date=d_iso, pages=gpages, rescan_of=rescan_of)
        return g, data

    def write(self, folder: Path) -> GoldDossier:
        """Write the dossier's documents into `folder` and return its gold record."""
        r = self.rng
        self.used_names: set[str] = set()
        self.dpi = self.forced_dpi
        gdocs: list[GoldDocument] = []
        stated: dict[str, set] = {}
        dates: dict[str, date | None] = {}
        originals: list[tuple[Doc, GoldDocument, bytes]] = []
        order = list(range(len(self.docs)))
        for idx in order:
            d = self.docs[idx]
            forced = self.p.renders.get(idx) if d in self.clinical else None
            g, data = self.write_document(folder, idx, d, forced, self.p.rotations.get(idx) if d in self.clinical else None)
            gdocs.append(g)
            stated[g.path] = d.stated
            dates[g.path] = d.date
            originals.append((d, g, data))
        if self.p.rescan:
            cands = [(d, g) for d, g, _ in originals if g.kind == "text_pdf" and d.doc_type != "administratif"]
            if cands:
                d, g = r.choice(cands)
                g2, _ = self.write_document(folder, -1, d, r.choice(["scanned_pdf", "jpeg"]), rescan_of=g.path)
                gdocs.append(g2)
                stated[g2.path] = d.stated
                dates[g2.path] = d.date
                self.phenomena.append("rescan")
        if self.p.duplicate and originals:
            d, g, data = r.choice([o for o in originals if o[0].doc_type != "administratif"] or originals)
            name = self.name_for(d.slug, g.path.rsplit(".", 1)[1])
            (folder / name).write_bytes(data)
            gdocs.append(g.model_copy(update={"path": name, "duplicate_of": g.path, "rescan_of": None}))
            stated[name] = d.stated
            dates[name] = d.date
            self.phenomena.append("duplicate")
        if self.p.unreadable:
            dpi = 200
            img = render.unreadable_page(dpi, self.np)
            if r.random() < 0.5:
                name, data, kind = self.name_for("scan", "pdf"), render.image_pdf([(img, None)], dpi, 50), "scanned_pdf"
            else:
                name, data, kind = self.name_for("scan", "jpg"), render.encode(img, "jpeg", 50), "image"
            (folder / name).write_bytes(data)
            gdocs.append(GoldDocument(path=name, kind=kind, doc_type="autre", pages=[GoldPage(number=1, text="", scanned=True)], readable=False))
            self.phenomena.append("unreadable")
        if any(g.kind != "text_pdf" for g in gdocs):
            self.phenomena.append("scanned")
        gdocs.sort(key=lambda g: g.path)
        return self.gold(gdocs, stated, dates)

    def gold(self, gdocs: list[GoldDocument], stated: dict[str, set], dates: dict[str, date | None]) -> GoldDossier:
        def docs_with(key) -> list[str]:
            return sorted(p for p, st in stated.items() if key in st)

        history: list[GoldHistory] = []
        for label, h in self.history.items():
            docs = docs_with(("h", label))
            if docs:
                item = h["item"]
                history.append(GoldHistory(label=label, code=item["code"], kind=h["kind"], date=str(h["year"]) if h["year"] else None,
                                           abbreviations=[s for s in item["surfaces"] if s != label], documents=docs))
        own = {h.label for h in history}
        for f in self.family:
            docs = docs_with(("f", f["item"]["label"]))
            if docs:
                item = f["item"]
                history.append(GoldHistory(label=item["label"], code=item["code"], kind="family",
                                           abbreviations=[s for s in item["surfaces"] if s != item["label"]], documents=docs))
                if item["label"] not in own:
                    self.distract("history", item["label"], "family")
        allergies = []
        for a in self.allergy_list:
            docs = docs_with(("a", a["item"]["substance"]))
            if docs:
                allergies.append(GoldAllergy(substance=a["item"]["substance"], reaction=a["reaction"], kind=a["kind"], documents=docs))
        by_drug: dict[str, list] = {}
        for path, st in stated.items():
            for s in st:
                if s[0] == "t":
                    by_drug.setdefault(s[1], []).append((path, s))
        atc = {it["drug"]: it["atc"] for it in items("drugs", self.split)} | self.courses
        treatments = []
        for drug, sts in by_drug.items():
            # the most recent document wins; within a document, the later statement (exit list, change)
            latest = max(sts, key=lambda ps: (dates[ps[0]] or date.max, ps[1][6]))[1]
            brand = next((s[4] for _, s in sorted(sts, key=lambda ps: ps[1][6]) if s[4]), None)
            treatments.append(GoldTreatment(drug=drug, brand=brand, atc=atc.get(drug), dose=latest[2], frequency=latest[3],
                                            status=latest[5], documents=sorted({p for p, _ in sts})))
        treatments.sort(key=lambda t: t.drug)

        def status(entries: list, block: str) -> str:
            if entries:
                return "known"
            return "none_known" if any(("none", block) in st for st in stated.values()) else "unknown"

        identity = None
        if not self.p.empty:
            identity = GoldIdentity(name=f"{self.first} {self.last}", birth_date=self.birth.isoformat(), ipp=self.ipp)
        return GoldDossier(
            dossier_id=self.id, identity=identity, split=self.split, seed=self.seed, documents=gdocs,
            history=history, allergies=allergies, treatments=treatments,
            history_status=status(history, "history"), allergy_status=status(allergies, "allergy"),
            treatment_status=status(treatments, "treatment"), distractors=self.distractors,
            phenomena=sorted(set(self.phenomena)))


def random_profile(r: random.Random) -> Profile:
    """Dossier-level phenomena drawn at the corpus's usual rates."""
    p = Profile()
    x = r.random()
    p.empty = x < 0.04
    p.admin_only = 0.04 <= x < 0.08
    p.duplicate = r.random() < 0.12
    p.rescan = r.random() < 0.10
    p.undated = r.random() < 0.15
    p.unreadable = r.random() < 0.07
    p.contradiction = r.random() < 0.15
    p.event = r.choice([None, None, "dose", "stop", "replace"])
    p.history = r.choices(["known", "none_known", "unknown"], [0.82, 0.13, 0.05])[0]
    p.allergy = "known" if p.contradiction else r.choices(["known", "none_known", "unknown"], [0.5, 0.32, 0.18])[0]
    p.treatment = r.choices(["known", "none_known", "unknown"], [0.78, 0.12, 0.10])[0]
    return p


def make_dossier(out: Path, dossier_id: str, seed: int, split: str, scan_ratio: float = 0.3,
                 profile: Profile | None = None, dpi: int | None = None) -> GoldDossier:
    """Write one dossier `out/<dossier_id>/` and its gold `out/<dossier_id>.gold.json`; return the gold.

    The folder is built under a temporary name and renamed at the end, so a failure leaves nothing partial.
    """
    if profile is None:
        profile = random_profile(dossier_rng(seed, dossier_id + ":profile"))
    dz = Dossier(dossier_id, seed, split, scan_ratio, profile)
    dz.forced_dpi = dpi
    dz.plan()
    final = out / dossier_id
    work = out / f".{dossier_id}.tmp"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    gold = dz.write(work)
    if final.exists():
        shutil.rmtree(final)
    work.rename(final)
    gold_path = out / f"{dossier_id}.gold.json"
    tmp = out / f".{dossier_id}.gold.json.tmp"
    tmp.write_text(gold.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(gold_path)
    return gold


def dossier_split(seed: int, dossier_id: str, split: SplitArg) -> str:
    """With split "all", each dossier is dev or heldout, 50/50, decided by the seed."""
    if split != "all":
        return split
    return "dev" if random.Random(f"synthese-split:{seed}:{dossier_id}").random() < 0.5 else "heldout"


def make_corpus(out: Path, dossiers: int, seed: int, split: SplitArg = "all", scan_ratio: float = 0.3) -> list[GoldDossier]:
    """Write `dossiers` synthetic dossiers P0001... under `out` with their gold files beside them.

    Deterministic: the same arguments give byte-identical files. Raises ValueError on bad arguments.
    """
    if dossiers < 0:
        raise ValueError("dossiers must be >= 0")
    if split not in ("dev", "heldout", "all"):
        raise ValueError(f"split must be dev, heldout or all, not {split!r}")
    if not 0.0 <= scan_ratio <= 1.0:
        raise ValueError("scan_ratio must be between 0 and 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    golds = []
    for i in range(1, dossiers + 1):
        did = f"P{i:04d}"
        golds.append(make_dossier(out, did, seed, dossier_split(seed, did, split), scan_ratio))
    return golds


def main(argv: list[str] | None = None) -> int:
    """`python -m samples.generate OUT --dossiers N --seed S --split all --scan-ratio 0.3`."""
    ap = argparse.ArgumentParser(prog="python -m samples.generate", description=main.__doc__)
    ap.add_argument("out", type=Path)
    ap.add_argument("--dossiers", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", choices=["dev", "heldout", "all"], default="all")
    ap.add_argument("--scan-ratio", type=float, default=0.3)
    a = ap.parse_args(argv)
    golds = make_corpus(a.out, a.dossiers, a.seed, a.split, a.scan_ratio)
    print(json.dumps({"dossiers": len(golds), "documents": sum(len(g.documents) for g in golds)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
