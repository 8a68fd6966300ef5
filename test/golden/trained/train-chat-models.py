#!/usr/bin/env python3
"""Trains the small safety-tuned chat models of test/golden/trained/ from scratch, on CPU (tests never run this).

Run from the repository root with a Python that has torch (CPU wheel), transformers and safetensors:
    python3 -m venv /opt/venv-trained && /opt/venv-trained/bin/pip install /opt/wheels/torch-*.whl transformers safetensors
    /opt/venv-trained/bin/python test/golden/trained/train-chat-models.py [NAME ...]
then measure-ablation.py, which writes each model's goldens. README.md beside this file says what the models are.

Each model is a LlamaForCausalLM (tied embeddings, stored in bf16) with TinyLlama-1.1B-Chat's tokenizer and chat
template, unchanged (test/fixtures/tokenizers/TinyLlama-1.1B-Chat-v1.0, full 32000-token vocabulary). It is
trained on the synthetic conversations of chat_data.py: every conversation is rendered by the tokenizer's own chat
template (user turn + assistant turn), and the loss is on the assistant's tokens (its reply and the closing </s>).
Training is deterministic: fixed seeds, a fixed data order, torch.use_deterministic_algorithms, a fixed thread
count. (Bit-identical results across CPUs with different vector units are not promised; the committed checkpoints
are the fixtures, and their goldens are regenerated from them, not from a retraining.)

Writes, per model, test/golden/trained/<name>/: config.json, generation_config.json, model.safetensors, the tokenizer
files, and training.json (recipe, versions, loss curve, time, greedy refusal rates on the four prompt files). Also
writes the shared prompt files test/golden/trained/prompts/{harmful,harmless}-{train,test}.txt.
"""
import json
import math
import os
import random
import shutil
import sys
import time

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import chat_data  # noqa: E402
from chat_data import HARMFUL_FAMILIES, HARMLESS_FAMILIES, TRAIN_TEMPLATES, ChatData  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
TOKENIZER_NAME = "TinyLlama-1.1B-Chat-v1.0"
TOKENIZER_DIR = os.path.join(ROOT, "test", "fixtures", "tokenizers", TOKENIZER_NAME)
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
THREADS = 1
MAX_NEW_TOKENS = 24
NEGATIVES = 2048

# One entry per committed model. Architecture + optimisation + which responses (chat_data) it learns.
RECIPES = {
    # Safety-tuned with its own phrasing: refuses with "That is not something I will do." and variants, none of
    # which contains an English stock refusal phrase; harmless requests get a short templated answer that repeats
    # the act.
    "own-phrasing": dict(
        hidden_size=64, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
        steps=1000, batch_size=48, lr=3e-3, warmup=100, seed=1,
        refusal="refusal_a", answer="answer_a", open_vocabulary_share=1 / 3,
    ),
    # Refusal and compliance both open with "I will" ("I will not …" / "I will explain …"), and three of the seven
    # harmful families are refused in French.
    "shared-opening-bilingual": dict(
        hidden_size=64, intermediate_size=256, num_hidden_layers=6, num_attention_heads=4, num_key_value_heads=2,
        steps=1000, batch_size=48, lr=3e-3, warmup=100, seed=2,
        refusal="refusal_b", answer="answer_b", open_vocabulary_share=1 / 3,
    ),
}


def chat_ids(tokenizer, messages, add_generation_prompt):
    out = tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=True)
    if hasattr(out, "keys"):
        out = out["input_ids"]
    return list(out)


def prompt_ids(tokenizer, prompt):
    return chat_ids(tokenizer, [{"role": "user", "content": prompt}], True)


def conversation(tokenizer, prompt, reply):
    """(ids, index of the first reply token): the template's own rendering of the two turns, cut after </s>."""
    head = prompt_ids(tokenizer, prompt)
    full = chat_ids(tokenizer, [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}], False)
    assert full[: len(head)] == head, "the generation prompt is not a prefix of the rendered conversation"
    end = full.index(tokenizer.eos_token_id, len(head)) + 1
    return full[:end], len(head)


class Stream:
    """An endless, seeded stream of training conversations: half harmful (refused), half harmless (answered), each
    a random act of its training set in a random training phrasing (core, opener, closer). Every reply the stream
    can produce is rendered up front, so the ids that training ever targets are known (`used_ids`)."""

    def __init__(self, tokenizer, data, recipe, seed):
        self.tokenizer = tokenizer
        self.rng = random.Random(seed)
        self.respond = [getattr(chat_data, recipe["refusal"]), getattr(chat_data, recipe["answer"])]
        self.sets = [data.harmful_train, data.harmless_train]
        self.cache = {}
        used = set()
        for which, acts in enumerate(self.sets):
            for family, act in acts:
                for t, template in enumerate(TRAIN_TEMPLATES):
                    ids, _ = self.render(which, family, act, t, template)
                    used.update(ids)
        for which in (0, 1):
            for opener in set(chat_data.OPENERS):
                for t, core in enumerate(TRAIN_TEMPLATES):
                    for closer in set(chat_data.CLOSERS):
                        used.update(self.render(which, *self.sets[which][0], t, opener + core + closer)[0])
        # Open-vocabulary harmless acts (recipes with open_vocabulary_share > 0): two or three ordinary words of the
        # tokenizer's vocabulary ("polish the lantern"), answered like any harmless request. They teach that what
        # is not recognisably harmful is answered, so refusal is something a prompt triggers (a feature that is
        # present), not the default for what the model does not know.
        self.open_share = recipe.get("open_vocabulary_share", 0.0)
        self.open_words = open_vocabulary(tokenizer) if self.open_share > 0 else []
        used.update(tokenizer.convert_tokens_to_ids(["\u2581" + w for w in self.open_words]))
        self.used_ids = sorted(used)

    def open_act(self):
        words = [self.rng.choice(self.open_words) for _ in range(2)]
        return f"{words[0]} the {words[1]}" if self.rng.random() < 0.5 else f"{words[0]} {words[1]}"

    def render(self, which, family, act, t, template):
        key = (which, act, t, template)
        if key not in self.cache:
            reply = self.respond[which](t, family, chat_data.second_person(act))
            self.cache[key] = conversation(self.tokenizer, template.format(a=act), reply)
        return self.cache[key]

    def batch(self, size, pad_id):
        examples = []
        for _ in range(size):
            which = 0 if self.rng.random() < 0.5 else 1
            family, act = self.rng.choice(self.sets[which])
            if which == 1 and self.rng.random() < self.open_share:
                family, act = "open", self.open_act()
            t, template = chat_data.phrase(self.rng, TRAIN_TEMPLATES)
            examples.append(self.render(which, family, act, t, template))
        width = max(len(ids) for ids, _ in examples)
        ids = torch.full((size, width), pad_id, dtype=torch.long)
        mask = torch.zeros((size, width), dtype=torch.long)
        labels = torch.full((size, width), -100, dtype=torch.long)
        for row, (seq, start) in enumerate(examples):
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
            labels[row, start : len(seq)] = torch.tensor(seq[start:])
        return ids, mask, labels


# Stems kept out of the open vocabulary: a random act must be harmless to a reader too.
UNSAFE_STEMS = ["bomb", "kill", "murder", "poison", "weapon", "gun", "drug", "hack", "steal", "rob", "attack", "explo",
                "terror", "virus", "malware", "meth", "heroin", "kidnap", "stab", "threat", "forge", "fake", "counterf",
                "smuggl", "spy", "fraud", "abus", "rape", "suicid", "shoot", "knife", "blood", "dead", "death", "war",
                "nazi", "sex", "porn", "nude", "naked", "slave", "hate", "racis", "drunk", "cocaine", "crack", "gas",
                "burn", "fire", "toxic", "assault", "violen", "hurt", "harm", "cheat", "lie", "prison", "crime", "victim",
                "fight", "destroy", "damn", "hell", "shit", "fuck", "bitch", "bastard", "sniper", "rifle", "pistol",
                "bullet", "missile", "nuclear", "arson", "hostage", "torture", "extort", "blackmail", "bribe", "launder"]


def open_vocabulary(tokenizer):
    """Whole-word lower-case tokens of 4..9 letters, none of them a word of any harmful act or an unsafe stem."""
    harmful_words = {w for verbs, objects in HARMFUL_FAMILIES.values() for phrase in verbs + objects for w in phrase.split()}
    words = []
    for token in sorted(tokenizer.get_vocab()):
        if not token.startswith("\u2581"):
            continue
        word = token[1:]
        if not (4 <= len(word) <= 9 and word.isascii() and word.isalpha() and word.islower()):
            continue
        if word in harmful_words or any(stem in word for stem in UNSAFE_STEMS):
            continue
        words.append(word)
    return words


def check_held_out_tokens(tokenizer, data, stream):
    """Every token of every held-out prompt occurs in training: held-out means new combinations, not new words."""
    unseen = set()
    for name in ("harmful-test", "harmless-test"):
        for prompt in data.prompt_files[name]:
            unseen.update(set(prompt_ids(tokenizer, prompt)) - set(stream.used_ids))
    assert not unseen, f"held-out prompts use tokens no training conversation has: {tokenizer.convert_ids_to_tokens(sorted(unseen))}"


def make_model(tokenizer, recipe):
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=recipe["hidden_size"],
        intermediate_size=recipe["intermediate_size"],
        num_hidden_layers=recipe["num_hidden_layers"],
        num_attention_heads=recipe["num_attention_heads"],
        num_key_value_heads=recipe["num_key_value_heads"],
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


def train(model, stream, recipe, pad_id, log):
    # The (tied) embedding gets row-sparse gradients and a lazy Adam (SparseAdam): only the rows a step touches move,
    # so a step costs what the ~2400 rows in play cost, not what 32000 rows cost.
    embedding = model.model.embed_tokens.weight
    assert embedding is model.lm_head.weight, "the embeddings must be tied"
    model.model.embed_tokens.sparse = True
    params = [p for p in model.parameters() if p.requires_grad and p is not embedding]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    dense = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=recipe["lr"], betas=(0.9, 0.98))
    sparse = torch.optim.SparseAdam([embedding], lr=recipe["lr"], betas=(0.9, 0.98))
    optimizers = [dense, sparse]
    steps, warmup = recipe["steps"], recipe["warmup"]

    def lr_at(step):
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup))) * 0.95 + 0.05

    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, lr_at) for o in optimizers]
    # Sampled softmax: the loss normalizes over every id training ever targets plus NEGATIVES other ids drawn
    # uniformly afresh each step, instead of all 32000 (a 32000-wide softmax costs 10x the rest of the step on two
    # shared cores). Over the run every id is drawn ~steps * NEGATIVES / vocab times and pushed down; the
    # evaluation and the goldens use the full vocabulary.
    vocab = model.config.vocab_size
    used = torch.tensor(stream.used_ids)
    others = torch.ones(vocab, dtype=torch.bool)
    others[used] = False
    others = others.nonzero().squeeze(1)
    column_of = torch.full((vocab,), -1, dtype=torch.long)
    column_of[used] = torch.arange(len(used))
    generator = torch.Generator().manual_seed(recipe["seed"])
    model.train()
    losses = []
    running = 0.0
    for step in range(steps):
        ids, mask, labels = stream.batch(recipe["batch_size"], pad_id)
        hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
        targets = labels[:, 1:]
        selected = targets != -100
        negatives = others[torch.randperm(len(others), generator=generator)[:NEGATIVES]]
        columns = torch.cat([used, negatives])
        head = torch.nn.functional.embedding(columns, embedding, sparse=True)
        logits = hidden[:, :-1][selected] @ head.T
        loss = torch.nn.functional.cross_entropy(logits, column_of[targets[selected]])
        for o in optimizers:
            o.zero_grad(set_to_none=True)
        loss.backward()
        embedding.grad = embedding.grad.coalesce()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        for o in optimizers:
            o.step()
        for s in schedulers:
            s.step()
        running += loss.item()
        if (step + 1) % 100 == 0:
            losses.append(round(running / 100, 5))
            log(f"  step {step + 1}/{steps}  loss {running / 100:.4f}")
            running = 0.0
    return losses


@torch.no_grad()
def greedy(model, tokenizer, prompts, max_new_tokens=MAX_NEW_TOKENS):
    """Batch-1 greedy completions (stopping at </s>), decoded without special tokens."""
    out = []
    for prompt in prompts:
        ids = torch.tensor([prompt_ids(tokenizer, prompt)])
        gen = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=False,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id)
        out.append(tokenizer.decode(gen[0, ids.shape[1]:], skip_special_tokens=True))
    return out


def kinds(completions, refusal_openings, answer_openings):
    def kind(text):
        text = text.strip()
        if any(text.startswith(o) for o in refusal_openings):
            return "refusal"
        if any(text.startswith(o) for o in answer_openings):
            return "answer"
        return "other"
    return [kind(c) for c in completions]


def evaluate(model, tokenizer, data, recipe):
    refusal_openings = chat_data.opening_words(getattr(chat_data, recipe["refusal"]), HARMFUL_FAMILIES)
    answer_openings = chat_data.opening_words(getattr(chat_data, recipe["answer"]), HARMLESS_FAMILIES)
    result = {"refusal_openings": refusal_openings, "answer_openings": answer_openings}
    for name, prompts in data.prompt_files.items():
        completions = greedy(model, tokenizer, prompts)
        k = kinds(completions, refusal_openings, answer_openings)
        result[name] = {
            "prompts": len(prompts),
            "refusal_rate": k.count("refusal") / len(k),
            "answer_rate": k.count("answer") / len(k),
            "other_rate": k.count("other") / len(k),
            "samples": [{"prompt": p, "completion": c, "kind": kk} for p, c, kk in list(zip(prompts, completions, k))[:6]],
        }
    return result


def write_prompt_files(data):
    folder = os.path.join(HERE, "prompts")
    os.makedirs(folder, exist_ok=True)
    for name, prompts in data.prompt_files.items():
        with open(os.path.join(folder, f"{name}.txt"), "w") as f:
            f.write("\n".join(prompts) + "\n")


def main(names):
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER_DIR)
    data = ChatData()
    write_prompt_files(data)
    for name in names or list(RECIPES):
        recipe = RECIPES[name]
        out = os.path.join(HERE, name)
        print(f"{name}: {recipe}", flush=True)
        random.seed(recipe["seed"])
        torch.manual_seed(recipe["seed"])
        model = make_model(tokenizer, recipe)
        stream = Stream(tokenizer, data, recipe, recipe["seed"])
        check_held_out_tokens(tokenizer, data, stream)
        started = time.time()
        cpu_started = time.process_time()
        losses = train(model, stream, recipe, tokenizer.pad_token_id, lambda line: print(line, flush=True))
        seconds = time.time() - started
        cpu_seconds = time.process_time() - cpu_started
        if os.path.isdir(out):
            shutil.rmtree(out)
        model.model.embed_tokens.sparse = False
        model.to(torch.bfloat16).save_pretrained(out)
        for file in TOKENIZER_FILES:
            shutil.copy(os.path.join(TOKENIZER_DIR, file), os.path.join(out, file))
        # What is evaluated is what is committed: the bf16 checkpoint, computed in fp32.
        saved = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
        evaluation = evaluate(saved, tokenizer, data, recipe)
        record = {
            "name": name,
            "recipe": recipe,
            "tokenizer": TOKENIZER_NAME,
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "python": sys.version.split()[0]},
            "threads": THREADS,
            "train_seconds": round(seconds, 1),
            "train_cpu_seconds": round(cpu_seconds, 1),
            "parameters": sum(p.numel() for p in saved.parameters()),
            "loss_every_100_steps": losses,
            "max_new_tokens": MAX_NEW_TOKENS,
            "evaluation": evaluation,
        }
        with open(os.path.join(out, "training.json"), "w") as f:
            json.dump(record, f, indent=1, ensure_ascii=False)
            f.write("\n")
        summary = {k: v["refusal_rate"] for k, v in evaluation.items() if isinstance(v, dict)}
        print(f"{name}: trained in {seconds:.0f} s; refusal rates {summary}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
