"""T and N derived from the findings that define them (AJCC 7th edition): each rule on the
phrasings the issue quotes, the cases where the definition needs more than the report gives
(no category then), and stated categories always winning over derived ones."""

from __future__ import annotations

import pytest

from kemm.knowledge.report_facts import extract_report_facts


def _tn(text: str, cancer: str) -> tuple[object, object]:
    facts = extract_report_facts(text, cancer)
    return (
        facts.t.value if facts.t else None,
        facts.n.value if facts.n else None,
    )


@pytest.mark.parametrize(
    ("text", "cancer", "t"),
    [
        # head and neck: named invasion gives T4a whatever the size
        (
            "FINAL DIAGNOSIS:\nTongue, partial glossectomy: squamous cell carcinoma.\n"
            "Tumor size: 4 X 2 cm\nTumor extent: Deep muscles of the tongue\n",
            "hnsc",
            "T4a",
        ),
        (
            "DIAGNOSIS:\nLarynx, total laryngectomy: squamous cell carcinoma (8.5 CM), which "
            "extends through the thyroid cartilage.\n",
            "hnsc",
            "T4a",
        ),
        # oral cavity by size
        (
            "DIAGNOSIS:\nFloor of mouth, resection: squamous cell carcinoma, measuring 3.5 cm "
            "in greatest dimension.\n",
            "hnsc",
            "T2",
        ),
        (
            "DIAGNOSIS:\nTongue, glossectomy: squamous cell carcinoma.\nTumor size: 1.8 cm\n",
            "hnsc",
            "T1",
        ),
        # breast by size
        ("DIAGNOSIS:\nInvasive ductal carcinoma.\nTumor size: 2.5 cm\n", "brca", "T2"),
        ("DIAGNOSIS:\nInvasive ductal carcinoma.\nTumor size: 0.4 cm\n", "brca", "T1a"),
        ("DIAGNOSIS:\nInvasive lobular carcinoma.\nTumor size: 6.1 cm\n", "brca", "T3"),
        # bladder by depth: the deepest layer stated as invaded
        (
            "DIAGNOSIS:\nUrothelial carcinoma, high grade.\nExtent of invasion: Tumor invades "
            "muscularis propria (detrusor muscle)\n",
            "blca",
            "T2",
        ),
        (
            "DIAGNOSIS:\nUrothelial carcinoma, invading through the muscularis propria into "
            "perivesical fat.\n",
            "blca",
            "T3",
        ),
        (
            "DIAGNOSIS:\nUrothelial carcinoma invades lamina propria.\nMuscularis propria: "
            "not involved.\n",
            "blca",
            "T1",
        ),
        # colorectum by depth
        (
            "DIAGNOSIS:\nAdenocarcinoma, moderately differentiated.\nTumor invades through the "
            "muscularis propria into pericolorectal tissue.\n",
            "coad",
            "T3",
        ),
        ("DIAGNOSIS:\nAdenocarcinoma invading into the submucosa.\n", "coad", "T1"),
        (
            "DIAGNOSIS:\nAdenocarcinoma.\nTumor penetrates the visceral peritoneum.\n",
            "coad",
            "T4a",
        ),
    ],
)
def test_t_derived_from_its_defining_finding(text, cancer, t):
    facts = extract_report_facts(text, cancer)
    assert facts.t is not None and facts.t.value == t
    assert facts.t.derived and facts.t.rule and t in facts.t.rule
    assert text[facts.t.start : facts.t.end] == facts.t.source


@pytest.mark.parametrize(
    ("text", "cancer"),
    [
        # reaching a bone is not invading it (TCGA-IQ-7632's phrasing)
        (
            "FINAL DIAGNOSIS. Invasive, well-differentiated squamous cell carcinoma of the "
            "floor of mouth; 5.5 cm. Tumor invades up to mandibular bone. Margins negative.",
            "hnsc",
        ),
        # laryngeal T is by subsites and fixation, never by size
        (
            "DIAGNOSIS:\nLarynx, laryngectomy: squamous cell carcinoma.\nTumor size: 2.5 cm\n",
            "hnsc",
        ),
        # breast skin involvement is T4 by extension: size cannot say
        (
            "DIAGNOSIS:\nInvasive ductal carcinoma with ulceration of the overlying skin.\n"
            "Tumor size: 3.0 cm\n",
            "brca",
        ),
        # colorectal invasion of an adjacent organ (T4b) is not derived
        (
            "DIAGNOSIS:\nAdenocarcinoma invades through the muscularis propria and directly "
            "invades adjacent organs (bladder).\n",
            "coad",
        ),
        # a negated layer is not invaded
        ("DIAGNOSIS:\nAdenocarcinoma. No invasion of the muscularis propria.\n", "coad"),
        # no rule for kidney T from size (T3 features the size rule cannot see)
        ("DIAGNOSIS:\nClear cell renal cell carcinoma.\nTumor size: 5.0 cm\n", "kirc"),
    ],
)
def test_no_t_where_the_definition_needs_more(text, cancer):
    assert extract_report_facts(text, cancer).t is None


@pytest.mark.parametrize(
    ("cancer", "text", "t"),
    [
        # stomach by depth (CAP wording, and free text)
        ("stad", "Microscopic Tumor Extension: Tumor invades lamina propria\n", "T1a"),
        ("stad", "DIAGNOSIS:\nAdenocarcinoma invades the submucosa.\n", "T1b"),
        ("stad", "DIAGNOSIS:\nAdenocarcinoma invades into the muscularis propria.\n", "T2"),
        (
            "stad",
            "Microscopic Tumor Extension: Tumor penetrates subserosal connective tissue without "
            "invasion of visceral peritoneum or adjacent structures\n",
            "T3",
        ),
        (
            "stad",
            "DIAGNOSIS:\nAdenocarcinoma invading through the muscularis propria into perigastric "
            "adipose tissue; serosa not involved.\n",
            "T3",
        ),
        (
            "stad",
            "Microscopic Tumor Extension: Tumor penetrates serosa (visceral peritoneum)\n",
            "T4a",
        ),
        ("stad", "Microscopic Tumor Extension: Tumor invades adjacent structures (spleen)\n", None),
        ("stad", "DIAGNOSIS:\nAdenocarcinoma invades subserosa and the pancreas.\n", None),
        # oesophagus by depth
        (
            "esca",
            "DIAGNOSIS:\nSquamous cell carcinoma invades lamina propria. Submucosa not involved.\n",
            "T1a",
        ),
        ("esca", "Microscopic Tumor Extension: Tumor invades adventitia\n", "T3"),
        (
            "esca",
            "DIAGNOSIS:\nAdenocarcinoma invades through the muscularis propria into "
            "the pericardium.\n",
            None,
        ),  # fmt: skip
        (
            "esca",
            "DIAGNOSIS:\nAdenocarcinoma status post neoadjuvant therapy, invades "
            "muscularis propria.\n",
            None,
        ),  # fmt: skip
        # thyroid by size where extension is denied; minimal extension T3
        (
            "thca",
            "DIAGNOSIS:\nPapillary thyroid carcinoma, 1.5 cm.\nExtrathyroidal extension: Not "
            "identified\n",
            "T1b",
        ),
        (
            "thca",
            "Tumor Size: Greatest dimension: 5.5 cm\nExtrathyroidal Extension: Absent\n",
            "T3",
        ),
        ("thca", "Tumor Size: Greatest dimension: 0.6 cm\nTumor limited to the thyroid.\n", "T1a"),
        (
            "thca",
            "Tumor Size: Greatest dimension: 1.2 cm\nExtrathyroidal Extension: Present, minimal\n",
            "T3",
        ),
        # extension not stated, left open or possibly gross; a multifocal tumour's size
        ("thca", "DIAGNOSIS:\nPapillary thyroid carcinoma.\nTumor size: 3.2 cm\n", None),
        (
            "thca",
            "Tumor size: 2.8 cm\nExtrathyroidal extension: cannot be determined\n",
            None,
        ),
        (
            "thca",
            "Tumor Size: Greatest dimension: 1.2 cm\nExtrathyroidal Extension: Present, "
            "extensive\n",
            None,
        ),
        (
            "thca",
            "Tumor size: 2.8 cm\nMinimal extrathyroidal extension into the trachea.\n",
            None,
        ),
        (
            "thca",
            "Tumor Focality: Multifocal\nTumor Size: 2.5 cm\nExtrathyroidal Extension: Not "
            "identified\n",
            None,
        ),
    ],
)
def test_stomach_oesophagus_and_thyroid_t(cancer, text, t):
    facts = extract_report_facts(text, cancer)
    assert (facts.t.value if facts.t else None) == t
    if t is not None:
        assert facts.t.derived and t in facts.t.rule
        assert text[facts.t.start : facts.t.end] == facts.t.source


@pytest.mark.parametrize(
    ("text", "t", "derived"),
    [
        # a cystoprostatectomy's prostate is what the bladder tumour invades, not another
        # tumour: the stated pT4a is read (TCGA-GV-A3JZ had lost it and derived T3)
        (
            "Direct Extension of Invasive Tumor: Perivesical fat. Prostatic stroma. Pathologic "
            "Stage: Primary Tumor: (pT). pT4a: Tumor invades prostate. Regional Lymph Nodes: "
            "(pN). pN3: Metastasis in common iliac lymph nodes.",
            "T4a",
            False,
        ),
        # the item's value cut into units by OCR: every structure listed is read
        (
            "Direct Extension of Invasive Tumor: Perivesical fat. Prostatic stroma. Other "
            "Diagnoses: See above.",
            "T4a",
            True,
        ),
        (
            "Urothelial carcinoma with involvement of perivesical adipose tissue. Prostate, "
            "excision (E) - Urothelial carcinoma involving prostatic urethra with invasion into "
            "adjacent prostatic parenchyma.",
            "T4a",
            True,
        ),
        # a prostate with its own tumour stays another tumour's
        (
            "Urothelial carcinoma invades into perivesical fat. Prostate, excision: prostatic "
            "adenocarcinoma, Gleason 3+3=6, pT2a.",
            "T3",
            True,
        ),
    ],
)
def test_bladder_t_beside_the_resected_prostate(text, t, derived):
    facts = extract_report_facts(text, "blca")
    assert facts.t is not None and (facts.t.value, facts.t.derived) == (t, derived)


def test_a_stated_category_wins_over_the_derived_one():
    text = "DIAGNOSIS:\nInvasive ductal carcinoma.\nTumor size: 2.5 cm\npT1c pN2a\n"
    facts = extract_report_facts(text, "brca")
    assert (facts.t.value, facts.t.derived) == ("T1c", False)
    assert (facts.n.value, facts.n.derived) == ("N2a", False)


@pytest.mark.parametrize(
    ("nodes", "cancer", "n"),
    [
        ("Lymph nodes: 0 of 15 positive", "coad", "N0"),
        ("Lymph nodes: 1 of 15 positive", "coad", "N1a"),
        ("Lymph nodes: 3 of 15 positive", "coad", "N1b"),
        ("Lymph nodes: 5 of 20 positive", "coad", "N2a"),
        ("Lymph nodes: 9 of 20 positive", "coad", "N2b"),
        ("Lymph nodes: 2 of 12 positive", "brca", "N1"),
        ("Lymph nodes: 4 of 12 positive", "brca", "N2"),
        ("Lymph nodes: 11 of 22 positive", "brca", "N3"),
        ("Lymph nodes: 2 of 20 positive", "stad", "N1"),
        ("Lymph nodes: 8 of 30 positive", "stad", "N3a"),
        ("Lymph nodes: 17 of 30 positive", "stad", "N3b"),
        ("Lymph nodes: 0 of 3 positive", "kirc", "N0"),
        ("Lymph nodes: 0 of 12 positive", "hnsc", "N0"),
        ("Lymph nodes: 3 of 20 positive", "esca", "N2"),
        ("Lymph nodes: 7 of 20 positive", "esca", "N3"),
        ("Lymph nodes: 1 of 12 positive", "blca", "N1"),
        ("Lymph nodes: 2 of 12 positive", "blca", "N2"),
        ("Lymph nodes: 3 of 9 positive", "skcm", "N2"),
        ("Lymph nodes: 4 of 9 positive", "skcm", "N3"),
        ("Lymph nodes: 2 of 14 positive", "prad", "N1"),
        ("Lymph nodes: 1 of 14 positive", "paad", "N1"),
        ("Lymph nodes: 3 of 25 positive", "cesc", "N1"),
        # N by count only where the definition is a count
        ("Lymph nodes: 2 of 12 positive", "hnsc", None),
        ("Lymph nodes: 2 of 5 positive", "kirc", None),  # 7th N1 = 6th N1 + N2
        ("Lymph nodes: 2 of 12 positive", "luad", None),  # stations
        ("Lymph nodes: 2 of 12 positive", "thca", None),  # central or lateral
        ("Lymph nodes: 2 of 12 positive", "ucec", None),  # pelvic or para-aortic
        ("Lymph nodes: 2 of 12 positive, one right common iliac", "blca", None),  # N3
        ("Lymph nodes: 2 of 9 positive, matted", "skcm", None),  # N3
        ("Lymph nodes: 1 of 9 positive; in-transit metastasis present", "skcm", None),
        ("Lymph nodes: 1 of 9 positive (isolated tumor cells)", "prad", None),  # N0(i+)
    ],
)
def test_n_derived_from_the_count_of_positive_nodes(nodes, cancer, n):
    text = f"DIAGNOSIS:\nCarcinoma.\n{nodes}\n"
    facts = extract_report_facts(text, cancer)
    assert (facts.n.value if facts.n else None) == n
    if n is not None:
        assert facts.n.derived and n in facts.n.rule


def test_no_n_where_the_count_does_not_decide():
    micro = "DIAGNOSIS:\nCarcinoma.\nLymph nodes: 1 of 3 positive (micrometastasis)\n"
    assert _tn(micro, "brca")[1] is None  # N1mi
    deposits = (
        "DIAGNOSIS:\nAdenocarcinoma.\nLymph nodes: 0 of 14 positive\nTumor deposits: present (2)\n"
    )
    assert _tn(deposits, "coad")[1] is None  # N1c
    no_deposits = deposits.replace("present (2)", "not identified")
    assert _tn(no_deposits, "coad")[1] == "N0"
    unstaged = "DIAGNOSIS:\nGlioblastoma.\nLymph nodes: 0 of 3 positive\n"
    assert _tn(unstaged, "gbm")[1] is None  # no AJCC table: no N0 either


def test_derived_categories_give_a_derived_stage_with_its_rule():
    text = (
        "DIAGNOSIS:\nAdenocarcinoma of the sigmoid colon.\nTumor invades through the "
        "muscularis propria into pericolorectal tissue.\nLymph nodes: 0 of 18 positive\n"
    )
    facts = extract_report_facts(text, "coad")
    assert (facts.t.value, facts.n.value, facts.stage.value) == ("T3", "N0", "IIA")
    assert facts.stage.derived and "T3 N0" in facts.stage.rule
    # a stated group is never replaced by one from derived categories
    stated = text + "Pathologic stage: IIB\n"
    assert extract_report_facts(stated, "coad").stage.value == "IIB"


def test_derived_categories_render_with_their_note_and_ground():
    from kemm.knowledge.extractive import DERIVED_TNM_NOTE, refine_extractive
    from kemm.knowledge.grounding import check_statement

    text = "DIAGNOSIS:\nInvasive ductal carcinoma.\nTumor size: 2.5 cm\nLymph nodes: 0 of 4\n"
    tnm = next(
        line for line in refine_extractive(text, cancer="brca") if line.startswith("Pathologic TNM")
    )
    assert DERIVED_TNM_NOTE in tnm and "T2" in tnm
    assert check_statement(tnm, text, cancer="brca").supported


@pytest.mark.data
def test_audit_head_and_neck_report_reads_size_nodes_and_derives_n0(data_root):
    """TCGA-IQ-7632 (audit set): "squamous cell carcinoma; 5.5 cm", three neck dissections
    with "Lymph nodes (2) ; negative for tumor" (25 and 3 more), and "Tumor invades up to
    mandibular bone" (reaching the bone, not invading it: no T)."""
    import pandas as pd

    table = pd.read_csv(data_root / "reports_audit" / "sampled_corrected.csv")
    text = dict(zip(table.case_id, table.text, strict=True))["TCGA-IQ-7632"]
    facts = extract_report_facts(text, "hnsc")
    assert facts.value("size_cm") == 5.5
    assert (facts.value("nodes_positive"), facts.value("nodes_examined")) == (0, 30)
    assert (facts.n.value, facts.n.derived) == ("N0", True)
    assert "0 of 30" in facts.n.rule
    assert facts.t is None and facts.stage is None


# A review's phrasings that once gave a confident wrong T: each now gives the right category or
# none (a missing category is never worse than a wrong one).
REVIEWED = [
    ("coad", "Adenocarcinoma invades submucosa.\nMuscularis propria: no tumor.\n", "T1"),
    ("coad", "Adenocarcinoma invades the submucosa; muscularis propria shows no invasion.\n", "T1"),
    ("blca", "Urothelial carcinoma invades lamina propria. Muscularis propria (detrusor muscle) "
             "is present and not involved.\n", "T1"),
    ("hnsc", "Tongue, glossectomy: squamous cell carcinoma, 3.0 cm.\nBone invasion: No\n", "T2"),
    ("coad", "Adenocarcinoma invades through the muscularis propria into pericolic fat; the "
             "visceral peritoneum is intact.\n", "T3"),
    ("coad", "Adenocarcinoma invades through the muscularis propria into pericolic fat, 0.1 cm "
             "from the serosal surface.\n", "T3"),
    ("blca", "Urothelial carcinoma invades lamina propria; invasion of muscularis propria cannot "
             "be ruled out.\n", None),
    ("blca", "Urothelial carcinoma invades lamina propria.\nLymphovascular invasion: not "
             "identified; muscularis propria (detrusor muscle): present\n", "T1"),
    ("blca", "Urothelial carcinoma invades lamina propria. Sections through the detrusor muscle "
             "show no carcinoma.\n", "T1"),
    ("hnsc", "Larynx: squamous cell carcinoma. Tumor does not extend through the thyroid "
             "cartilage.\n", None),
    ("hnsc", "Larynx: squamous cell carcinoma extending through the paraglottic space to the "
             "thyroid cartilage, inner cortex only.\n", None),
    ("blca", "Urothelial carcinoma invades prostatic stroma.\n", "T4a"),
    ("coad", "Adenocarcinoma invades through muscularis propria. Tumor directly invades the "
             "urinary bladder.\n", None),
    ("coad", "Adenocarcinoma invades through muscularis propria into pericolic fat, adherent to "
             "the small bowel.\n", None),
    ("blca", "Urothelial carcinoma invades perivesical fat and pelvic sidewall.\n", None),
    ("hnsc", "Tonsil: squamous cell carcinoma, 3.0 cm, invading the medial pterygoid muscle.\n",
     None),
    ("hnsc", "Tonsil, biopsy: benign.\nNeck dissection: metastatic squamous cell carcinoma, "
             "3.5 cm.\n", None),
    ("brca", "Invasive ductal carcinoma.\nTotal tumor size (including DCIS): 3.0 cm\n", None),
    ("brca", "Status post neoadjuvant chemotherapy. Invasive ductal carcinoma.\nResidual tumor "
             "size: 2.5 cm\n", None),
    ("brca", "No neoadjuvant therapy. Invasive ductal carcinoma.\nTumor size: 2.5 cm\n", "T2"),
]  # fmt: skip


@pytest.mark.parametrize(("cancer", "text", "t"), REVIEWED)
def test_reviewed_phrasings_give_the_right_t_or_none(cancer, text, t):
    assert _tn("DIAGNOSIS:\n" + text, cancer)[0] == t


def test_non_nodal_n_findings_stop_n0():
    deposits = "DIAGNOSIS:\nAdenocarcinoma.\nLymph nodes: 0 of 12 positive\n"
    assert _tn(deposits + "Discontinuous extramural extension: present\n", "coad")[1] is None
    melanoma = "DIAGNOSIS:\nMelanoma.\nLymph nodes: 0 of 3 positive\n"
    assert _tn(melanoma, "skcm")[1] == "N0"
    assert _tn(melanoma + "Satellite metastasis: present\n", "skcm")[1] is None  # N2c


@pytest.mark.parametrize(
    ("text", "t"),
    [
        ("Tumor size: 3.5 cm\nTumor limited to the kidney.", "T1a"),
        ("Tumor size: 6.5 cm\nExtent: confined to kidney; no invasion of the renal vein.", "T1b"),
        ("Tumor size: 9.5 cm\nTumor confined to the kidney.", "T2a"),
        ("Tumor size: 12 cm\nTumor confined to the kidney.", "T2b"),
        # no statement that it stays in the kidney: the size alone does not decide
        ("Tumor size: 3.5 cm", None),
        # "not limited to the kidney", or an extension named (T3 whatever the size)
        ("Tumor size: 3.5 cm\nTumor is not limited to the kidney.", None),
        ("Tumor size: 3.5 cm\nTumor limited to the kidney.\nTumor invades renal sinus fat.", None),
        ("Tumor size: 3.5 cm\nConfined to kidney.\nTumor extends into the renal vein.", None),
        ("Tumor size: 3.5 cm\nConfined to kidney.\nTumor abuts, but does not invade, Gerota's "
         "fascia; perinephric fat invasion cannot be excluded.", None),
    ],
)  # fmt: skip
def test_kidney_t_by_size_only_when_limited_to_the_kidney(text, t):
    facts = extract_report_facts("DIAGNOSIS:\nClear cell renal cell carcinoma.\n" + text, "kirc")
    assert (facts.t.value if facts.t else None) == t
    if t is not None:
        assert facts.t.derived and "limited to the kidney" in facts.t.rule


@pytest.mark.parametrize(
    ("text", "t"),
    [
        ("Breslow thickness: 0.6 mm", "T1"),
        ("Tumor thickness (Breslow): 1.8 mm", "T2"),
        ("Breslow depth 3.2 mm", "T3"),
        ("Breslow thickness: 6 mm", "T4"),
        ("Breslow thickness: at least 2.5 mm (transected at the base)", None),
        ("Breslow thickness: 0.9 mm\nA second focus, Breslow thickness 2.4 mm", None),
        ("Clark level IV", None),
    ],
)
def test_melanoma_t_by_breslow_thickness(text, t):
    facts = extract_report_facts("DIAGNOSIS:\nMalignant melanoma, skin of back.\n" + text, "skcm")
    assert (facts.t.value if facts.t else None) == t


_KIDNEY = "DIAGNOSIS:\nClear cell renal cell carcinoma.\nTumor size: 3.0 cm\n"


@pytest.mark.parametrize(
    "finding",
    [
        # an extension named before its verb, or in other words (T3-T4 whatever the size)
        "Tumor limited to the kidney.\nRenal vein invasion: present",
        "Tumor limited to the kidney.\nPerinephric fat inv.: present",
        "Tumor limited to the kidney.\nRenal sinus: involved",
        "Tumor limited to the kidney; renal vein invasion present.",
        "Tumor limited to the kidney.\nTumor thrombus present in main renal vein",
        "Tumor limited to the kidney.\nIVC thrombus: present",
        "Tumor limited to the kidney.\nMacroscopic venous invasion: present",
        "Tumor limited to the kidney.\nExtrarenal extension present",
        "Tumor limited to the kidney.\nTumor invades into the fat",
        # the statement of confinement denied, left open, unticked, or said of something else
        "Tumor limited to the kidney: No",
        "Tumor limited to the kidney? Cannot be determined.",
        "[ ] Tumor limited to kidney\n[X] Tumor grossly extends into major veins",
        "The cyst is confined to the kidney.",
        # another lesion as large as the size read
        "Tumor limited to the kidney.\nA second tumor measures 6.0 cm.",
        "Tumor confined to the kidney.\n(B) Right kidney: angiomyolipoma, 7.5 cm.",
    ],
)
def test_no_kidney_t_from_size_beside_an_extension_or_a_doubt(finding):
    assert _tn(_KIDNEY + finding, "kirc")[0] is None


def test_kidney_t_from_size_beside_denied_extensions_and_smaller_lesions():
    text = _KIDNEY + (
        "Tumor confined to the kidney; it does not invade the perinephric adipose tissue, renal "
        "sinus or renal vein.\nAdrenal cortical adenoma (1.7 cm maximum dimension).\n"
    )
    assert _tn(text, "kirc")[0] == "T1a"


@pytest.mark.parametrize(
    "text",
    [
        "Breslow thickness: 1.2 mm (at least)",
        "Breslow thickness: 0.9 mm, transected at the deep margin",
        "Malignant melanoma in situ. Tumor thickness: 0.3 mm",
        "Re-excision: residual melanoma in scar, Breslow thickness 0.5 mm",
        "Soft tissue, right flank, excision: metastatic melanoma. Tumor thickness 9 mm",
        "In-transit metastasis, tumor thickness 3.0 mm",
    ],
)
def test_no_melanoma_t_from_a_bound_or_from_what_is_not_the_invasive_primary(text):
    assert _tn("DIAGNOSIS:\n" + text + "\n", "skcm")[0] is None


@pytest.mark.parametrize(
    ("nodes", "cancer"),
    [
        # a node group that is not regional for the cancer: a metastasis there is M1, not N
        ("Common iliac lymph nodes: 1 of 2 positive", "prad"),
        ("Para-aortic lymph nodes: 1 of 1 positive", "prad"),
        ("Para-aortic lymph nodes: 1 of 3 positive", "cesc"),
        ("Aortocaval lymph nodes: 1 of 2 positive", "paad"),
        ("Para-aortic lymph node: 1 of 2 positive", "blca"),
    ],
)
def test_no_n_from_a_count_that_may_include_distant_nodes(nodes, cancer):
    assert _tn(f"DIAGNOSIS:\nCarcinoma.\n{nodes}\n", cancer)[1] is None


@pytest.mark.parametrize(
    ("text", "cancer"),
    [
        ("Pelvic lymph nodes: 0 of 20 positive\nParametrial lymph node: metastatic carcinoma",
         "cesc"),
        ("Lymph nodes: 0 of 3 positive\nIsolated melanoma cells in one node", "skcm"),
        ("Lymph nodes: 0 of 12 positive\nC. Hilar lymph node: metastatic carcinoma in one lymph "
         "node", "luad"),
    ],
)  # fmt: skip
def test_no_n0_beside_a_node_metastasis_stated_in_words(text, cancer):
    assert _tn(f"DIAGNOSIS:\nCarcinoma.\n{text}\n", cancer)[1] is None


@pytest.mark.parametrize(
    "nodes",
    [
        "Lymph nodes: 0/8 positive for metastasis",
        "Lymph nodes examined: 12. Number of metastatic nodes: 0",
        "Sentinel lymph nodes: 8 of 8, negative for metastatic carcinoma",
        "Eight of eight sentinel lymph nodes, free of metastatic carcinoma",
    ],
)
def test_n0_where_every_node_statement_is_negative(nodes):
    assert _tn(f"DIAGNOSIS:\nInvasive ductal carcinoma.\n{nodes}\n", "brca")[1] == "N0"
