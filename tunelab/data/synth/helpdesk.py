"""The built-in university-helpdesk example: a long system prompt with checkable rules, and
seeded synthetic feedback logs in English and Russian.

Each log row is what a team would export from production: the question, the user's tags (role,
campus, education level), the retrieved contexts, the model's answer, a good/bad label and, for
bad answers, a comment saying why. Questions come in three kinds: answerable from the contexts,
unanswerable (retrieval returned unrelated passages), and off-topic. Good answers follow every
rule of `PROMPT_YAML`; each bad answer breaks one rule, named by its comment.
"""

from __future__ import annotations

import random
from typing import Any

PROMPT_YAML = """\
name: university-helpdesk
prompt: |
  You are the helpdesk assistant of Northfield University. You answer questions from students,
  applicants and university staff, who reach you through the university portal. Each message
  gives you the user's tags (their role, campus and education level), the passages that the
  search system retrieved for the question, and the question itself.

  How to answer:
  - Always be polite and calm, even when the user is not.
  - Start every reply with the form of address for the user's role: "Dear student," for
    students, "Dear applicant," for applicants and "Dear colleague," for staff. In Russian use
    "Уважаемый студент," "Уважаемый абитуриент," and "Уважаемый коллега,".
  - Answer only from the retrieved passages. Do not add facts, dates, prices, rooms or names
    that the passages do not contain, and do not rely on what you think you know about
    universities in general.
  - When the passages do not contain the answer, say "I don't know" (in Russian "Я не знаю")
    and suggest contacting the helpdesk office; never guess.
  - Only help with questions about the university: studies, admission, exams, fees, housing,
    the library, IT accounts and work at the university. Politely decline anything else
    (poems, jokes, sports, cooking, personal advice) by saying "I can only help with university
    questions" (in Russian "Я могу помочь только с вопросами об университете").
  - Reply in the language of the question: English questions in English, Russian in Russian.
  - Keep it short: at most three sentences, no bullet points or numbered lists, no headings.
  - Never describe yourself as an AI or a language model.
  - End every reply with a short question offering further help.
rules:
  - kind: language
    description: reply in the language of the question
  - kind: max_sentences
    n: 3
  - id: no_list
    kind: format
    format: no_list
  - kind: ends_with_question
  - id: not_an_ai
    kind: must_not_contain
    phrase: "as an AI"
  - kind: role_address
    tag: role
    forms:
      student: ["Dear student", "Уважаемый студент"]
      applicant: ["Dear applicant", "Уважаемый абитуриент"]
      staff: ["Dear colleague", "Уважаемый коллега"]
  - kind: grounded
    dont_know: ["I don't know", "не знаю"]
    ignore: ["Dear student", "Dear applicant", "Dear colleague", "Уважаемый студент", "Уважаемый абитуриент", "Уважаемый коллега"]
    min_overlap: 0.6
  - kind: declines_off_topic
    topic_keywords: [library, tuition, dormitory, exam, retake, card, admission, application, applicants, documents,
      deadline, leave, password, account, scholarship, thesis, semester, campus, university, student,
      dean, course, lecture, библиотека, оплата, обучение, общежитие, экзамен, пересдача, студенческий,
      документы, приём, поступление, заявление, отпуск, пароль, стипендия, диплом, семестр, кампус,
      университет, студент, деканат, зачисление, диссертацию, защиты, выпускную]
    decline_phrases: ["I can only help with university questions", "только с вопросами об университете"]
"""

ROLES = ("student", "applicant", "staff")
CAMPUSES = {"north": ("North", "Северного"), "south": ("South", "Южного")}
LEVELS = ("bachelor", "master", "phd")
GREETING = {
    "en": {"student": "Dear student", "applicant": "Dear applicant", "staff": "Dear colleague"},
    "ru": {"student": "Уважаемый студент", "applicant": "Уважаемый абитуриент", "staff": "Уважаемый коллега"},
}
CLOSING = {
    "en": ("Can I help you with anything else?", "Is there anything else I can help with?"),
    "ru": ("Могу ли я помочь чем-то ещё?", "Есть ли у вас другие вопросы?"),
}
DONT_KNOW = {
    "en": "I don't know, the documents I have do not cover this, so please contact the helpdesk office.",
    "ru": "Я не знаю, в моих документах об этом ничего нет, поэтому обратитесь в офис поддержки.",
}
DECLINE = {
    "en": "I can only help with university questions.",
    "ru": "Я могу помочь только с вопросами об университете.",
}

# topic -> (English fact, Russian fact, English questions, Russian questions); {c} is the campus.
TOPICS: dict[str, tuple[str, str, tuple[str, ...], tuple[str, ...]]] = {
    "library": (
        "the {c} campus library is open from 8:00 to 22:00 on weekdays and from 10:00 to 18:00 on Saturdays.",
        "библиотека {c} кампуса открыта с 8:00 до 22:00 по будням и с 10:00 до 18:00 по субботам.",
        ("When is the library open?", "What are the library opening hours on Saturdays?", "Until what time is the library open on weekdays?"),
        ("Когда открыта библиотека?", "Какие часы работы библиотеки по субботам?", "До скольки открыта библиотека по будням?"),
    ),
    "tuition": (
        "the tuition payment deadline for the autumn semester is September 15, and you pay through the student portal.",
        "оплата обучения за осенний семестр вносится до 15 сентября через портал студента.",
        ("What is the tuition payment deadline?", "How do I pay tuition for the autumn semester?", "By when must the tuition payment be made?"),
        ("До какого числа нужна оплата обучения?", "Как внести оплату обучения за осенний семестр?", "Когда крайний срок оплаты обучения?"),
    ),
    "dormitory": (
        "dormitory room applications are submitted in the student portal before August 1, and the housing office assigns the rooms.",
        "заявление на общежитие подаётся на портале студента до 1 августа, комнаты распределяет жилищный отдел.",
        ("Where do I send a dormitory room application?", "When are dormitory room applications due?", "Who assigns dormitory rooms?"),
        ("Как подать заявление на общежитие?", "До какого числа подаётся заявление на общежитие?", "Кто распределяет комнаты в общежитии?"),
    ),
    "retake": (
        "an exam retake is requested at the dean's office no later than ten days after the failed exam.",
        "пересдача экзамена оформляется в деканате не позднее десяти дней после несданного экзамена.",
        ("How can I request an exam retake?", "Where do I ask for an exam retake?", "How long do I have to request a retake after a failed exam?"),
        ("Как оформить пересдачу экзамена?", "Куда обращаться для пересдачи экзамена?", "Сколько дней есть на оформление пересдачи после экзамена?"),
    ),
    "card": (
        "a lost student card is replaced at the service centre in the main building for a fee of 300 roubles.",
        "утерянный студенческий билет восстанавливают в сервисном центре главного корпуса, стоимость 300 рублей.",
        ("I lost my student card, what should I do?", "Where can I replace a lost student card?", "How much does a new student card cost?"),
        ("Я потерял студенческий билет, что делать?", "Где восстановить студенческий билет?", "Сколько стоит восстановление студенческого билета?"),
    ),
    "documents": (
        "applicants submit these documents to the admissions office: a passport, a school certificate and two photos.",
        "для поступления абитуриенты подают в приёмную комиссию документы: паспорт, аттестат и две фотографии.",
        ("What documents do applicants bring to the admissions office?", "Which documents does the admissions office need?", "Do applicants need photos for admission?"),
        ("Какие документы нужны для поступления?", "Какие документы подают абитуриенты в приёмную комиссию?", "Нужны ли фотографии абитуриентам для поступления?"),
    ),
    "admission": (
        "the admissions office accepts applications for bachelor and master programmes until July 20.",
        "приёмная комиссия принимает заявления на поступление в бакалавриат и магистратуру до 20 июля.",
        ("Until when does the admissions office accept applications?", "What is the application deadline for master programmes?", "When do applications for bachelor programmes close?"),
        ("До какого числа принимаются заявления на поступление?", "Когда заканчивается приём заявлений в магистратуру?", "До какого числа приёмная комиссия принимает заявления на бакалавриат?"),
    ),
    "leave": (
        "staff request annual leave through the HR portal at least two weeks in advance.",
        "сотрудники оформляют ежегодный отпуск через кадровый портал не позднее чем за две недели.",
        ("How do staff request annual leave?", "How early must I request annual leave?", "Where do I apply for annual leave?"),
        ("Как сотруднику оформить отпуск?", "За сколько недель нужно оформлять ежегодный отпуск?", "Где подать заявление на ежегодный отпуск?"),
    ),
    "password": (
        "a forgotten university account password is reset at the IT service desk in room 105 of the main building.",
        "забытый пароль от университетской учётной записи сбрасывают в IT-службе, кабинет 105 главного корпуса.",
        ("I forgot my university account password, what do I do?", "Where can I reset my account password?", "Who resets a forgotten password for the university account?"),
        ("Я забыл пароль от учётной записи, что делать?", "Где сбросить пароль от университетской учётной записи?", "Кто сбрасывает забытый пароль?"),
    ),
    "scholarship": (
        "students with excellent grades receive an academic scholarship, paid monthly on the 25th.",
        "студенты с отличными оценками получают академическую стипендию, её выплачивают ежемесячно 25 числа.",
        ("Who receives the academic scholarship?", "When is the scholarship paid?", "Is the academic scholarship paid monthly?"),
        ("Кто получает академическую стипендию?", "Когда выплачивают стипендию?", "Стипендию выплачивают ежемесячно?"),
    ),
    "thesis": (
        "a master's thesis is submitted to the department two weeks before the defence.",
        "магистерскую диссертацию сдают на кафедру за две недели до защиты.",
        ("When must I submit my master's thesis?", "Where is the master's thesis submitted?", "How long before the defence is the thesis due?"),
        ("Когда сдавать магистерскую диссертацию?", "Куда сдавать магистерскую диссертацию?", "За сколько недель до защиты сдают диссертацию?"),
    ),
}
# Two topics close enough that one's passage half-answers the other's question.
SIBLINGS = {"documents", "admission"}
# Twelve per language, so that questions held out by wording still leave varied ones to learn from.
OFF_TOPIC = {
    "en": ("Can you write me a poem about the sea?", "What is the best pizza place in town?", "Who will win the football match tonight?",
           "Tell me a joke about cats.", "How do I fix the engine of my car?", "Give me a recipe for pancakes.",
           "What should I cook for dinner tonight?", "Recommend a good movie for the weekend.", "What is the weather like in Paris?",
           "Write a short story about a dragon.", "How do I lose weight quickly?", "Which stocks should I buy this year?"),
    "ru": ("Напиши мне стихотворение о море.", "Где лучшая пицца в городе?", "Кто выиграет футбольный матч сегодня?",
           "Расскажи анекдот про котов.", "Как починить двигатель машины?", "Дай рецепт блинов.",
           "Что приготовить на ужин сегодня?", "Посоветуй хороший фильм на выходные.", "Какая погода в Париже?",
           "Напиши рассказ про дракона.", "Как быстро похудеть?", "Какие акции купить в этом году?"),
}
# Share of each question kind. The rare kinds (no answer in the contexts, off-topic) are the hard
# ones for a small model, so they get a quarter each rather than their production share.
KIND_WEIGHTS = {"answerable": 0.5, "unanswerable": 0.25, "off_topic": 0.25}
PII = {"en": " My email is {n}.petrov@example.com and my phone is +7 912 345-67-{d}.", "ru": " Моя почта {n}.ivanova@mail.ru, телефон +7 912 345-67-{d}."}
FILLER = {
    "en": "Our university is one of the oldest in the region. It has many faculties. Students enjoy studying here.",
    "ru": "Наш университет один из старейших в регионе. В нём много факультетов. Студентам здесь нравится учиться.",
}
HALLUCINATION = {
    "en": "this is handled by Professor Smith in room 999, it is free and takes one day.",
    "ru": "этим занимается профессор Смирнов в кабинете 999, это бесплатно и занимает один день.",
}
COMMENTS = {
    "no_greeting": ("does not address the user by role", "нет обращения к пользователю"),
    "wrong_form": ("wrong form of address for the role", "неверное обращение для роли"),
    "too_long": ("too long, more than three sentences", "слишком длинно, больше трёх предложений"),
    "list": ("uses a bullet list", "использует список"),
    "no_question": ("does not end with a question", "не заканчивается вопросом"),
    "wrong_language": ("answered in the wrong language", "ответ на другом языке"),
    "hallucination": ("made up information not in the context", "выдуманная информация, которой нет в контексте"),
    "ai_self": ("calls itself an AI", "называет себя ИИ"),
    "off_topic_answered": ("answered an off-topic request", "ответил на вопрос не по теме"),
    "guessed": ("guessed instead of saying it does not know", "угадывает вместо того чтобы сказать что не знает"),
}


def fact(topic: str, lang: str, campus: str) -> str:
    en, ru, _, _ = TOPICS[topic]
    text = en if lang == "en" else ru
    return text.format(c=CAMPUSES[campus][0 if lang == "en" else 1])


def good_answer(kind: str, lang: str, role: str, body: str, rng: random.Random) -> str:
    core = {"answerable": body, "unanswerable": DONT_KNOW[lang], "off_topic": DECLINE[lang]}[kind]
    if lang == "ru":  # after "Уважаемый студент," the sentence goes on in lower case
        core = core[0].lower() + core[1:]
    return f"{GREETING[lang][role]}, {core} {rng.choice(CLOSING[lang])}"


def bad_answer(kind: str, lang: str, role: str, body: str, rng: random.Random) -> tuple[str, str]:
    """A reply that breaks one rule, and the grader's comment (in the question's language)."""
    greet, close = GREETING[lang][role], rng.choice(CLOSING[lang])
    if kind == "off_topic":
        flaw, text = "off_topic_answered", ("Sure! Here it is: the sea is wide and blue. " if lang == "en" else "Конечно! Вот: море широкое и синее. ") + close
    elif kind == "unanswerable":
        flaw, text = "guessed", f"{greet}, {HALLUCINATION[lang]} {close}"
    else:
        flaw = rng.choice(["no_greeting", "wrong_form", "too_long", "list", "no_question", "wrong_language", "hallucination", "ai_self"])
        other_lang = "ru" if lang == "en" else "en"
        other_role = rng.choice([r for r in ROLES if r != role])
        ai = "As an AI, I can tell you that " if lang == "en" else "As an AI, скажу, что "
        text = {
            "no_greeting": f"{body[0].upper()}{body[1:]} {close}",
            "wrong_form": f"{GREETING[lang][other_role]}, {body} {close}",
            "too_long": f"{greet}, {body} {FILLER[lang]} {close}",
            "list": f"{greet}:\n- {body}\n- {close}",
            "no_question": f"{greet}, {body}",
            "wrong_language": f"{GREETING[other_lang][role]}, {DONT_KNOW[other_lang]} {rng.choice(CLOSING[other_lang])}",
            "hallucination": f"{greet}, {HALLUCINATION[lang]} {close}",
            "ai_self": f"{greet}, {ai}{body} {close}",
        }[flaw]
    return text, COMMENTS[flaw][0 if lang == "en" else 1]


def sample_question(rng: random.Random, lang: str) -> dict[str, Any]:
    """One question with its tags, contexts and what kind it is (answerable/unanswerable/off_topic)."""
    role, campus, level = rng.choice(ROLES), rng.choice(list(CAMPUSES)), rng.choice(LEVELS)
    kind = rng.choices(list(KIND_WEIGHTS), weights=list(KIND_WEIGHTS.values()))[0]
    topic = rng.choice(list(TOPICS))
    others = rng.sample([t for t in TOPICS if t != topic and {t, topic} != SIBLINGS], 2)
    if kind == "off_topic":
        question, contexts, body = rng.choice(OFF_TOPIC[lang]), [_capital(fact(t, lang, campus)) for t in others], ""
    else:
        question = rng.choice(TOPICS[topic][2 if lang == "en" else 3])
        retrieved = [topic, others[0]] if kind == "answerable" else others
        rng.shuffle(retrieved)
        contexts = [_capital(fact(t, lang, campus)) for t in retrieved]
        body = fact(topic, lang, campus)
    if rng.random() < 0.05:
        question += PII[lang].format(n=rng.choice(["ivan", "olga", "petr"]), d=rng.randint(10, 99))
    return {"question": question, "role": role, "campus": campus, "level": level, "contexts": contexts,
            "kind": kind, "topic": topic if kind != "off_topic" else "", "lang": lang, "body": body}


def _capital(text: str) -> str:
    return text[0].upper() + text[1:]


def generate_logs(n_questions: int = 300, seed: int = 0, both_rate: float = 0.4, bad_only_rate: float = 0.15, ru_share: float = 0.4) -> list[dict[str, Any]]:
    """Log rows for `n_questions` sampled questions: a good answer for most, a bad one for some,
    both (a DPO pair) for `both_rate` of them. `kind`, `topic` and `lang` are kept as extra
    columns so tests can check the rule heuristics against the truth."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for i in range(n_questions):
        q = sample_question(rng, "ru" if rng.random() < ru_share else "en")
        body = q.pop("body")
        base = {**q, "contexts": list(q["contexts"])}
        r = rng.random()
        with_good, with_bad = r >= bad_only_rate, r < bad_only_rate + both_rate
        if with_good:
            rows.append({"id": f"q{i:04d}-good", **base, "answer": good_answer(q["kind"], q["lang"], q["role"], body, rng), "label": "good", "comment": ""})
        if with_bad:
            text, comment = bad_answer(q["kind"], q["lang"], q["role"], body, rng)
            rows.append({"id": f"q{i:04d}-bad", **base, "answer": text, "label": "bad", "comment": comment})
    return rows
